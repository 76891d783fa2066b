"""A once-for-all weight-sharing supernet over the network-level space (Lecture 11, "Performance
estimation"; Cai, Gan, Wang, Zhang & Han 2019, "Once-for-All: Train One Network and Specialize
it for Efficient Deployment", Section 3).

Training every candidate from scratch is the ground truth and far too slow for a search. A
*supernet* holds the weights of the largest network of a `NetworkSpace`; every architecture of
the space is a sub-network that takes a part of those weights:

    elastic resolution  the input is fed at the architecture's resolution (one set of weights:
                        convolutions and global pooling work at any size)
    elastic depth       stage i runs its first `stage{i}.depth` blocks and skips the rest
                        (OFA Section 3.2: "keep the first D blocks")
    elastic kernel      a k x k depthwise kernel is the centre of the largest kernel, transformed
                        by a kernel transformation matrix: 7x7 -> centre 5x5 -> (25 x 25 matrix)
                        -> centre 3x3 -> (9 x 9 matrix). One matrix per layer and per step, shared
                        by all channels, initialised to the identity (OFA Section 3.2, Fig. 4 left)
    elastic expand      a block with expand ratio t keeps the first round(t · c_in) channels of
                        its expanded (hidden) layer; `sort_channels` first reorders them by
                        importance, the L1 norm of the projection weights that read them, so
                        the kept channels are the important ones (OFA Section 3.2, Fig. 4 right)
    elastic width       the width multiplier scales every stage's output channels; a narrower
                        network keeps the first channels of every layer (slimmable networks,
                        Yu et al. 2019; BigNAS, Yu et al. 2020)
        NOTE: once-for-all keeps the width multiplier fixed and trains one supernet per
        multiplier (their 1.0 and 1.2 models); here it is elastic too, without importance
        sorting (a stage's output channels are shared by its blocks and the residual
        connections, so one order must suit them all: the first channels are used as they are).

Any sub-network is evaluated without retraining (`evaluate`: extract it, recalibrate its
BatchNorm statistics on a few training batches, measure its accuracy), or extracted as a
stand-alone network (`extract(arch)`): exactly the `nn.Sequential` that `space.build(arch)`
makes (so `profile` and `space.costs` apply), holding the supernet's weights, whose outputs
equal the supernet's with that setting.

Training (`train_supernet`), three schedules:

    "sandwich"     each step trains the largest, the smallest and `num_random` random
                   sub-networks on the same batch and takes one optimiser step on the summed
                   gradients (the sandwich rule, Yu & Huang 2019, "Universally Slimmable
                   Networks"; BigNAS); with in-place distillation the sub-networks also learn
                   the largest network's soft predictions
    "uniform"      each step trains `num_random` sub-networks drawn uniformly (single-path
                   one-shot, Guo et al. 2019): every sub-network gets the same share of the
                   training, and a step costs an average sub-network, not the largest. With a
                   short budget the sandwich rule over-trains the two extremes relative to the
                   rest (it ranks them too high); uniform sampling is fairer and cheaper
    "progressive"  once-for-all's progressive shrinking, simplified: train the largest network
                   (resolution elastic throughout), then make the kernel elastic, then the
                   depth, then sort channels and make the expand ratio and width elastic; each
                   phase distils from the largest network trained in the first one (OFA Fig. 3)
        NOTE: OFA trains each phase for many more epochs with its own learning rate and samples
        one to four sub-networks per step; here every phase has `lr` and a cosine schedule of
        its own and `num_random` sub-networks per step.

Everything random comes from `config.seed` (sampled sub-networks, mini-batch order) and from
torch's seed when the `Supernet` is built (its initial weights);
the device is chosen by the caller (`train_supernet(..., device=...)`, `supernet.to(device)`);
checkpoints are plain `state_dict`s (`save_supernet` / `load_supernet`, and per-epoch training
checkpoints that `resume=True` continues to the same result). Under `torchrun` the training is
data-parallel (DDP, the same sub-networks on every rank; see `edgeai.distributed`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgeai import distributed as dist
from edgeai.blocks import ConvBNAct, InvertedResidual
from edgeai.data import Dataset, Split, batches
from edgeai.estimation.train import evaluate_accuracy, num_threads, resolve_device
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig

__all__ = [
    "ELASTIC_DIMENSIONS",
    "Supernet",
    "SupernetTrainConfig",
    "SupernetTrainResult",
    "train_supernet",
    "recalibrate_bn",
    "save_supernet",
    "load_supernet",
]

ELASTIC_DIMENSIONS = ("resolution", "kernel", "depth", "expand", "width")
RULES = ("sandwich", "uniform", "progressive")

# once-for-all's progressive shrinking (Fig. 3): what is elastic in each phase. Resolution is
# elastic from the start (OFA samples the input size of every batch in every phase).
PROGRESSIVE_PHASES = (
    ("full", ("resolution",)),
    ("elastic kernel", ("resolution", "kernel")),
    ("elastic depth", ("resolution", "kernel", "depth")),
    ("elastic expand and width", ELASTIC_DIMENSIONS),
)


def dimension(decision: str) -> str:
    """The elastic dimension a decision of the network space belongs to:
    "stage2.block1.kernel" -> "kernel", "stage2.depth" -> "depth", "width" -> "width"."""
    return decision.rsplit(".", 1)[-1]


# --------------------------------------------------------------------------------------------
# Elastic layers: the largest layer's weights, used in part
# --------------------------------------------------------------------------------------------


class ElasticConvBNAct(nn.Module):
    """A `ConvBNAct` at its largest size whose forward uses the first `c_in` input and `c_out`
    output channels (and, for a depthwise layer, a `k x k` kernel taken from the largest one
    through once-for-all's kernel transformation matrices)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 depthwise: bool = False, kernels: Sequence[int] = (), activation: str | None = "relu6"):
        super().__init__()
        if depthwise and in_channels != out_channels:
            raise ValueError(f"a depthwise layer has as many outputs as inputs, got {in_channels} -> {out_channels}")
        groups = in_channels if depthwise else 1
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU6() if activation == "relu6" else nn.Identity()
        self.activation, self.stride, self.depthwise = activation, stride, depthwise
        self.max_kernel = kernel_size
        # the kernel sizes this layer can take, largest first, and one transformation matrix per
        # step down: "7to5" (25 x 25), "5to3" (9 x 9), identity at initialisation (OFA Section 3.2)
        self.kernels = tuple(sorted(set(kernels) | {kernel_size}, reverse=True))
        if self.kernels[0] != kernel_size:
            raise ValueError(f"kernel_size={kernel_size} must be the largest of kernels={kernels}")
        if len(self.kernels) > 1 and not depthwise:
            raise ValueError("only a depthwise layer has an elastic kernel here")
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernels, self.kernels[1:])
        })

    def weight(self, c_in: int, c_out: int, k: int | None = None) -> torch.Tensor:
        """The active weight: (c_out, c_in, k, k), or (c, 1, k, k) for a depthwise layer."""
        k = self.max_kernel if k is None else k
        if k not in self.kernels:
            raise ValueError(f"kernel {k} is not one of this layer's kernel sizes {self.kernels}")
        if self.depthwise:
            w = self.conv.weight[:c_out]  # (c, 1, K, K)
        else:
            w = self.conv.weight[:c_out, :c_in]  # (c_out, c_in, K, K)
        size = self.max_kernel
        for small in self.kernels[1:]:
            if size <= k:
                break
            start = (size - small) // 2
            centre = w[:, :, start:start + small, start:start + small]  # (c, 1, small, small)
            matrix = self.transforms[f"{size}to{small}"]  # (small², small²), shared by all channels
            w = F.linear(centre.reshape(-1, small * small), matrix).reshape(w.shape[0], w.shape[1], small, small)
            size = small
        return w.contiguous()

    def forward(self, x: torch.Tensor, c_out: int, k: int | None = None) -> torch.Tensor:
        c_in = x.shape[1]
        w = self.weight(c_in, c_out, k)
        k = w.shape[-1]
        y = F.conv2d(x, w, None, self.stride, k // 2, groups=c_out if self.depthwise else 1)  # (B, c_out, H/s, W/s)
        bn = self.bn
        y = F.batch_norm(y, bn.running_mean[:c_out], bn.running_var[:c_out], bn.weight[:c_out], bn.bias[:c_out],
                         self.training, bn.momentum, bn.eps)  # running statistics: the slices are updated in place
        return self.act(y)

    @torch.no_grad()
    def export(self, layer: ConvBNAct, c_in: int, c_out: int, k: int | None = None) -> None:
        """Copy the active weights into a stand-alone `ConvBNAct` of that size."""
        conv, bn = layer[0], layer[1]
        conv.weight.copy_(self.weight(c_in, c_out, k))
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(self.bn, name)[:c_out])
        bn.num_batches_tracked.copy_(self.bn.num_batches_tracked)


class ElasticInvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block at its largest size: expand 1x1, depthwise k x k,
    linear 1x1 projection, with elastic input, hidden (expand ratio), output channels and kernel.
    A block built without expansion (t = 1, the network's first block) has none."""

    def __init__(self, c_in: int, c_out: int, hidden: int, stride: int, kernels: Sequence[int], expand: bool = True):
        super().__init__()
        self.stride = stride
        self.expand = ElasticConvBNAct(c_in, hidden, 1) if expand else None
        self.depthwise = ElasticConvBNAct(hidden, hidden, max(kernels), stride, depthwise=True, kernels=kernels)
        self.project = ElasticConvBNAct(hidden, c_out, 1, activation=None)

    def forward(self, x: torch.Tensor, c_out: int, t: float, k: int) -> torch.Tensor:
        c_in = x.shape[1]
        hidden = int(round(c_in * t))  # as InvertedResidual
        h = x if self.expand is None else self.expand(x, hidden)  # (B, c_in, H, W) -> (B, hidden, H, W)
        h = self.depthwise(h, hidden, k)  # (B, hidden, H/s, W/s)
        out = self.project(h, c_out)  # (B, c_out, H/s, W/s)
        if self.stride == 1 and c_in == c_out:
            return x + out
        return out

    def export(self, block: InvertedResidual, c_in: int, c_out: int, t: float, k: int) -> None:
        hidden = int(round(c_in * t))
        layers = list(block.conv)
        if self.expand is not None:
            self.expand.export(layers.pop(0), c_in, hidden)
        self.depthwise.export(layers[0], hidden, hidden, k)
        self.project.export(layers[1], hidden, c_out)

    @torch.no_grad()
    def sort_channels(self) -> torch.Tensor:
        """Reorder the hidden channels by importance, the L1 norm of the projection weights that
        read each of them, most important first (OFA's `re_organize_middle_weights`). The block
        computes the same function at full width; narrower settings then keep the important
        channels. Returns the order applied."""
        if self.expand is None:
            raise ValueError("a block without expansion has no hidden channels to sort")
        importance = self.project.conv.weight.abs().sum(dim=(0, 2, 3))  # (hidden,)
        order = torch.argsort(importance, descending=True, stable=True)
        self.project.conv.weight.copy_(self.project.conv.weight[:, order])
        for layer in (self.depthwise, self.expand):
            layer.conv.weight.copy_(layer.conv.weight[order])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(layer.bn, name).copy_(getattr(layer.bn, name)[order])
        return order


class ElasticLinear(nn.Linear):
    """The classifier at its largest input width, using the first `c_in` input features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in) -> (B, classes)
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)


# --------------------------------------------------------------------------------------------
# The supernet
# --------------------------------------------------------------------------------------------


class Supernet(nn.Module):
    """The once-for-all supernet of a `NetworkSpace`: one set of weights for every architecture.

        net = Supernet(NetworkSpace(NetworkSpaceConfig.digits()))
        logits = net(x, arch)              # x: (B, C, r, r) at arch["resolution"]
        model = net.extract(arch)          # == space.build(arch) with these weights
        acc = net.evaluate(arch, data)     # BN recalibrated, no retraining
    """

    def __init__(self, space: NetworkSpace):
        super().__init__()
        if not isinstance(space, NetworkSpace):
            raise TypeError(f"space must be an edgeai.spaces.network.NetworkSpace, got {type(space).__name__}")
        self.space = space
        c = space.config
        for w in c.widths:  # an expand layer that adds no channel is left out of the built block
            for row in space.layout(self._extreme(max, width=w))[2:]:  # the elastic blocks
                for t in c.expand_ratios:
                    if row[0] == "block" and int(round(row[1] * t)) == row[1]:
                        raise ValueError(f"expand ratio t={t} adds no channel to the {row[1]} inputs of a block at "
                                         f"width {w}: the supernet needs expand ratios that widen every block")
        # the largest size of every layer over all widths (each row of layout(), for every width)
        sizes: dict[str, list[int]] = {}
        for w in c.widths:
            arch = self._extreme(max, width=w)
            for name, row in zip(self._names(arch), space.layout(arch)):
                if row[0] == "block":  # (c_in, c_out, largest hidden width); the first block has t = 1
                    ratios = (1,) if name == "first" else c.expand_ratios
                    row = (*row[:3], max(int(round(row[1] * t)) for t in ratios))
                old = sizes.get(name)
                sizes[name] = list(row[1:]) if old is None else [max(a, b) for a, b in zip(old, row[1:])]
        self.stem = ElasticConvBNAct(c.in_channels, sizes["stem"][1], 3, c.stem_stride)
        c_in, c_out, hidden = sizes["first"][:3]
        self.first = ElasticInvertedResidual(c_in, c_out, hidden, 1, (3,), expand=False)
        self.stages = nn.ModuleList()
        for i, (_, stride) in enumerate(c.stages, start=1):
            blocks = nn.ModuleList()
            for j in range(max(c.depths)):
                c_in, c_out, hidden = sizes[f"stage{i}.block{j}"][:3]
                blocks.append(ElasticInvertedResidual(c_in, c_out, hidden, stride if j == 0 else 1, c.kernels))
            self.stages.append(blocks)
        self.last = ElasticConvBNAct(*sizes["last"][:2], 1) if c.last_channels else None
        self.head = ElasticLinear(sizes["head"][0], c.num_classes)

    # ------------------------------------------------------------------ architectures

    def _extreme(self, pick, **fixed) -> dict:
        arch = {name: pick(options) for name, options in self.space.decisions()}
        arch.update(fixed)
        return arch

    def largest(self) -> dict:
        """Every decision at its largest option (highest resolution, widest, deepest, ...)."""
        return self._extreme(max)

    def smallest(self) -> dict:
        """Every decision at its smallest option."""
        return self._extreme(min)

    def sample(self, rng: random.Random, elastic: Sequence[str] = ELASTIC_DIMENSIONS, **fixed) -> dict:
        """A random architecture in which only the `elastic` dimensions vary (the others at their
        largest option, as in a phase of progressive shrinking); `fixed` decisions override."""
        unknown = set(elastic) - set(ELASTIC_DIMENSIONS)
        if unknown:
            raise ValueError(f"elastic dimensions must be among {ELASTIC_DIMENSIONS}, got {sorted(unknown)}")
        arch = self.space.sample(rng)
        for name, options in self.space.decisions():
            if dimension(name) not in elastic:
                arch[name] = max(options)
        arch.update(fixed)
        return arch

    def _names(self, arch: dict) -> list[str]:
        """The name of the supernet layer behind each row of `space.layout(arch)`."""
        names = ["stem", "first"]
        for i, _ in enumerate(self.space.config.stages, start=1):
            names += [f"stage{i}.block{j}" for j in range(arch[f"stage{i}.depth"])]
        return names + (["last"] if self.space.config.last_channels else []) + ["head"]

    def _rows(self, arch: dict):
        """(supernet layer, layout row) for each layer of the sub-network `arch`."""
        for name, row in zip(self._names(arch), self.space.layout(arch), strict=True):
            if name.startswith("stage"):
                i, j = name[len("stage"):].split(".block")
                yield self.stages[int(i) - 1][int(j)], row
            else:
                yield getattr(self, name), row

    # ------------------------------------------------------------------ running a sub-network

    def forward(self, x: torch.Tensor, arch: dict) -> torch.Tensor:
        """Logits of the sub-network `arch` on `x` (B, in_channels, r, r), r = arch["resolution"]."""
        arch = self.space.validate(arch)
        r = arch["resolution"]
        if x.dim() != 4 or x.shape[-2:] != (r, r):
            raise ValueError(f"x must have shape (B, {self.space.config.in_channels}, {r}, {r}) for resolution {r}, "
                             f"got {tuple(x.shape)}")
        for layer, row in self._rows(arch):
            kind = row[0]
            if kind in ("stem", "last"):
                x = layer(x, row[2])  # (B, c_out, H', W')
            elif kind == "block":
                _, _, c_out, t, k, _ = row
                x = layer(x, c_out, t, k)  # (B, c_out, H', W')
            else:
                x = x.mean(dim=(2, 3))  # (B, c): global average pooling
                x = layer(x)  # (B, classes)
        return x

    @torch.no_grad()
    def extract(self, arch: dict) -> nn.Sequential:
        """The stand-alone network of `arch`: `space.build(arch)` (same classes, so `profile`
        and `space.costs` apply) with the supernet's weights and BN statistics, on the
        supernet's device, in eval mode. In eval mode its outputs equal `self(x, arch)`."""
        arch = self.space.validate(arch)
        model = self.space.build(arch).to(self.head.weight.device)
        for (layer, row), module in zip(self._rows(arch), model):
            kind = row[0]
            if kind == "stem":
                layer.export(module, row[1], row[2])
            elif kind == "last":
                layer.export(module, row[1], row[2])
            elif kind == "block":
                _, c_in, c_out, t, k, _ = row
                layer.export(module, c_in, c_out, t, k)
            else:
                linear = module[-1]
                linear.weight.copy_(layer.weight[:, : row[1]])
                linear.bias.copy_(layer.bias)
        return model.eval()

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Importance-sort the hidden channels of every elastic block (see
        `ElasticInvertedResidual.sort_channels`): the largest network's function is unchanged."""
        for blocks in self.stages:
            for block in blocks:
                block.sort_channels()

    def evaluate(
        self,
        arch: dict,
        data: Dataset | Mapping[int, Dataset],
        split: str = "val",
        calibration_samples: int = 512,
        batch_size: int = 256,
        seed: int = 0,
        channels_last: bool = False,
        threads: int | None = None,
    ) -> float:
        """Accuracy of the sub-network `arch` without retraining: extract it, recalibrate its
        BatchNorm statistics on `calibration_samples` training images (the same seeded subset
        for every architecture; OFA uses 2000 ImageNet images), then measure on `split`. The
        running statistics the supernet collected during training mix many sub-networks and are
        wrong for any single one, hence the recalibration. The data must lie on the supernet's
        device; `channels_last` runs the network in NHWC (faster depthwise convolutions on CPU);
        `threads` sets the CPU threads meanwhile (see `num_threads`)."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        arch = self.space.validate(arch)
        inputs = Inputs(data, self.space.config.resolutions)
        model = self.extract(arch)
        r = arch["resolution"]
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=fmt)
        calibration = [x.contiguous(memory_format=fmt) for x in inputs.calibration(r, calibration_samples, batch_size, seed)]
        split = inputs.split(split, r)
        with num_threads(threads):
            recalibrate_bn(model, calibration)
            return evaluate_accuracy(model, Split(split.x.contiguous(memory_format=fmt), split.y))

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return f"Supernet({self.space!r}, {params:,} parameters)"


@torch.no_grad()
def recalibrate_bn(model: nn.Module, inputs) -> nn.Module:
    """Reset every BatchNorm's running statistics and recompute them as the plain average over
    the batches `inputs` (an iterable of input tensors), in train mode without gradients (OFA's
    `set_running_statistics`); the model is left in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    seen = 0
    for x in inputs:
        model(x)
        seen += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    if not seen:
        raise ValueError("recalibrate_bn got no batches")
    return model.eval()


# --------------------------------------------------------------------------------------------
# The data at every resolution
# --------------------------------------------------------------------------------------------


class Inputs:
    """Images of one dataset at each resolution of the space: either a dict {resolution:
    Dataset} of the same images at each size (e.g. `{r: digits(r, seed=0) for r in (8, 16, 32)}`,
    same seed, so the same split), or one Dataset resized on the fly (bilinear, on its device)."""

    def __init__(self, data: Dataset | Mapping[int, Dataset], resolutions: Sequence[int]):
        if isinstance(data, Dataset):
            self.by_resolution = {data.input_shape[-1]: data}
        elif isinstance(data, Mapping) and data and all(isinstance(d, Dataset) for d in data.values()):
            self.by_resolution = dict(data)
            first = next(iter(data.values()))
            for r, d in data.items():
                if d.input_shape[-1] != r:
                    raise ValueError(f"data[{r}] holds {d.input_shape[-1]}-pixel images, not {r}")
                for name in ("train", "val", "test"):
                    if not torch.equal(getattr(d, name).y, getattr(first, name).y):
                        raise ValueError(f"data[{r}].{name} has other labels than the other resolutions: "
                                         "make every resolution from the same split (same seed)")
        else:
            raise TypeError("data must be an edgeai.data.Dataset or a dict {resolution: Dataset}, "
                            f"got {type(data).__name__}")
        self.resolutions = tuple(resolutions)
        self.base = self.by_resolution[max(self.by_resolution)]

    def split(self, name: str, r: int) -> Split:
        if r in self.by_resolution:
            return getattr(self.by_resolution[r], name)
        s = getattr(self.base, name)
        return Split(F.interpolate(s.x, size=(r, r), mode="bilinear", align_corners=False), s.y)

    def train_batch(self, index: torch.Tensor, r: int) -> torch.Tensor:
        if r in self.by_resolution:
            return self.by_resolution[r].train.x[index]
        return F.interpolate(self.base.train.x[index], size=(r, r), mode="bilinear", align_corners=False)

    @property
    def labels(self) -> torch.Tensor:
        return self.base.train.y

    def calibration(self, r: int, samples: int, batch_size: int, seed: int) -> list[torch.Tensor]:
        n = len(self.labels)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(samples, n)]
        order = order.to(self.labels.device)
        return [self.train_batch(order[i:i + batch_size], r) for i in range(0, len(order), batch_size)]

    def to(self, device: torch.device) -> "Inputs":
        out = copy.copy(self)
        out.by_resolution = {r: d.to(device) for r, d in self.by_resolution.items()}
        out.base = out.by_resolution[max(out.by_resolution)]
        return out


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupernetTrainConfig:
    """How a supernet is trained (see the module docstring for the two schedules)."""

    rule: str = "sandwich"  # "sandwich" (Yu & Huang 2019), "uniform" (Guo et al. 2019) or "progressive" (OFA)
    epochs: int = 10  # sandwich / uniform: epochs of training every dimension elastic (after the warm-up)
    warmup_epochs: int = 0  # sandwich / uniform: epochs of the largest network alone first (then channels are sorted)
    phase_epochs: tuple[int, int, int, int] = (3, 2, 2, 3)  # progressive: full, +kernel, +depth, +expand/width (OFA Fig. 3)
    num_random: int = 2  # random sub-networks per step (sandwich: besides the largest and the smallest)
    shared_resolution: bool = True  # one input resolution per step for all its sub-networks (OFA); False:
    #                                 the largest at the highest and the smallest at the lowest (BigNAS)
    distill: bool = True  # sandwich: in-place distillation from the largest (US-Nets); progressive: from the full network (OFA)
    batch_size: int = 64  # images per step (every sub-network of a step sees the same batch)
    lr: float = 0.05  # peak learning rate of SGD with Nesterov momentum, cosine decay in each phase
    momentum: float = 0.9
    weight_decay: float = 3e-5  # once-for-all's setting
    label_smoothing: float = 0.1  # once-for-all's setting
    grad_clip: float | None = None  # clip the gradient's global norm (None: off)
    seed: int = 0  # sub-network sampling and mini-batch order (seed torch before building the Supernet for its weights)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        for name in ("epochs", "warmup_epochs", "num_random", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "batch_size" else 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'batch_size' else 'non-negative'} integer, got {value!r}")
        if (len(self.phase_epochs) != len(PROGRESSIVE_PHASES)
                or any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in self.phase_epochs)):
            raise ValueError(f"phase_epochs must be {len(PROGRESSIVE_PHASES)} non-negative integers "
                             f"({', '.join(n for n, _ in PROGRESSIVE_PHASES)}), got {self.phase_epochs!r}")
        if self.rule != "sandwich" and self.num_random < 1:
            raise ValueError(f"rule {self.rule!r} needs num_random >= 1 sub-networks per step")
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"need lr > 0, 0 <= momentum < 1, weight_decay >= 0, 0 <= label_smoothing < 1; got "
                             f"lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, "
                             f"label_smoothing={self.label_smoothing}")
        if sum(self.phases_epochs()) == 0:
            raise ValueError("the schedule has no epoch to train")

    def phases(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """(name, epochs, elastic dimensions) of each phase, in order."""
        if self.rule in ("sandwich", "uniform"):
            return [("largest", self.warmup_epochs, ("resolution",)), (self.rule, self.epochs, ELASTIC_DIMENSIONS)]
        return [(name, e, dims) for (name, dims), e in zip(PROGRESSIVE_PHASES, self.phase_epochs)]

    def phases_epochs(self) -> list[int]:
        return [e for _, e, _ in self.phases()]


@dataclass
class SupernetTrainResult:
    """What a supernet training run did."""

    losses: list[float] = field(default_factory=list)  # mean loss per step of each epoch (summed over sub-networks)
    phases: list[str] = field(default_factory=list)  # the phase of each epoch
    steps: int = 0
    subnets: int = 0  # sub-network forward/backward passes
    seconds: float = 0.0


def _soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Knowledge distillation loss: cross-entropy against the teacher's softmax (OFA's "ce" KD)."""
    return torch.sum(-F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1), dim=1).mean()


def _step_archs(supernet: Supernet, rng: random.Random, config: SupernetTrainConfig, elastic: tuple[str, ...]) -> list[dict]:
    """The sub-networks trained in one step (the largest first when it is among them)."""
    r = {"resolution": rng.choice(supernet.space.config.resolutions)}  # one input size per batch, as OFA
    if elastic == ("resolution",):  # the largest network only (warm-up / OFA's first phase)
        return [dict(supernet.largest(), **r)]
    if not config.shared_resolution:
        r = {}
    if config.rule == "sandwich":
        return ([dict(supernet.largest(), **r), dict(supernet.smallest(), **r)]
                + [supernet.sample(rng, elastic, **r) for _ in range(config.num_random)])
    return [supernet.sample(rng, elastic, **r) for _ in range(config.num_random)]


def train_supernet(
    supernet: Supernet,
    data: Dataset | Mapping[int, Dataset],
    config: SupernetTrainConfig = SupernetTrainConfig(),
    *,
    device: str | torch.device = "cpu",
    autocast: bool | None = None,
    channels_last: bool = False,
    threads: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    distributed: bool | None = None,
) -> SupernetTrainResult:
    """Train `supernet` in place on `data` (one Dataset, resized on the fly to each resolution,
    or `{resolution: Dataset}`), moved once to `device`. Each phase of `config.phases()` has a
    fresh SGD optimiser and a cosine schedule. With `checkpoint=path` the supernet, optimiser,
    schedule and every random state are saved after each epoch; `resume=True` continues from
    that file and ends with the same weights as an uninterrupted run.

    device          chosen once by the caller: "cpu", "cuda", "cuda:N" or "auto"
    autocast        bf16 autocast (None: on for CUDA)
    channels_last   NHWC memory format (faster depthwise convolutions on CPU and recent GPUs)
    threads         CPU threads while training (see `num_threads`)
    distributed     data-parallel over the ranks of torch.distributed's process group (None: when
                    there is one of more than one rank, e.g. under torchrun; see
                    `edgeai.distributed`): `config.batch_size` is the global batch, each rank
                    trains on its shard, every rank samples the same sub-networks, gradients are
                    averaged by DDP; only rank 0 writes the checkpoint and shows progress
    """
    if not isinstance(supernet, Supernet):
        raise TypeError(f"supernet must be a Supernet, got {type(supernet).__name__}")
    if not isinstance(config, SupernetTrainConfig):
        raise TypeError(f"config must be a SupernetTrainConfig, got {type(config).__name__}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    device = resolve_device(device)
    autocast = device.type == "cuda" if autocast is None else bool(autocast)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    inputs = Inputs(data, supernet.space.config.resolutions).to(device)
    labels = inputs.labels
    n = len(labels)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size
    supernet.to(device=device, memory_format=fmt)
    distributed = dist.active() if distributed is None else bool(distributed)
    if distributed and not dist.active():
        raise ValueError("distributed=True needs a torch.distributed process group of more than one rank (torchrun)")
    model = supernet  # what runs the forward passes: the supernet, or DDP around it
    if distributed:
        if batch_size % dist.world_size():
            raise ValueError(f"batch_size={batch_size} (the global batch) must be a multiple of the "
                             f"{dist.world_size()} ranks")
        # a sub-network leaves weights unused (skipped blocks, other kernels' transformations)
        model = dist.wrap(supernet, device, find_unused_parameters=True)
    main = dist.is_main()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    rng = random.Random(config.seed)  # sub-network sampling
    order = torch.Generator().manual_seed(config.seed)  # mini-batch order
    result = SupernetTrainResult()
    start_phase, start_epoch, state = 0, 0, None
    if resume and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["config"] != dataclasses.asdict(config) or state["space"] != dataclasses.asdict(supernet.space.config):
            raise ValueError(f"checkpoint {checkpoint} was written with another config or space")
        supernet.load_state_dict(state["supernet"])
        rng.setstate(state["rng"])
        order.set_state(state["order"].cpu())
        result = SupernetTrainResult(**state["result"])
        start_phase, start_epoch = state["phase"], state["epoch"]
    total_epochs = sum(config.phases_epochs())
    bar = tqdm(total=total_epochs, initial=len(result.losses), desc="supernet", disable=not progress or not main,
               leave=False, unit="epoch")
    teacher = state["teacher"] if state is not None else None  # state_dict of the progressive teacher
    index_split = Split(torch.arange(n, device=device), labels)  # batches of (sample indices, labels)
    started = time.perf_counter() - result.seconds
    trained_before = 0  # epochs of the phases before this one
    with num_threads(threads):
        for phase_index, (phase, epochs, elastic) in enumerate(config.phases()):
            if phase_index < start_phase or epochs == 0:
                trained_before += epochs
                continue
            first = start_epoch if state is not None and phase_index == start_phase else 0
            if first == 0 and elastic == ELASTIC_DIMENSIONS and trained_before > 0:
                supernet.sort_channels()  # OFA sorts before the expand ratio becomes elastic
            if config.rule == "progressive" and config.distill and trained_before > 0 and teacher is None:
                teacher = supernet.extract(supernet.largest()).state_dict()  # OFA's teacher: the full network
            teacher_net = None
            if config.rule == "progressive" and teacher is not None:
                teacher_net = supernet.space.build(supernet.largest()).to(device=device, memory_format=fmt)
                teacher_net.load_state_dict(teacher)
                teacher_net.eval().requires_grad_(False)
            params = [p for p in supernet.parameters() if p.requires_grad]
            opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                                  weight_decay=config.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
            if first:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
            for epoch in range(first, epochs):
                supernet.train()
                loss_sum = torch.zeros((), device=device)  # summed on the device: no host sync per step
                for index, y in batches(index_split, batch_size, rng=order, drop_last=True):
                    if distributed:  # this rank's shard of the global batch (same permutation everywhere)
                        index, y = dist.shard(index), dist.shard(y)
                    opt.zero_grad(set_to_none=True)
                    archs = _step_archs(supernet, rng, config, elastic)  # the same on every rank: same seed
                    soft = None  # the teacher's logits on this batch
                    if teacher_net is not None:
                        x = inputs.train_batch(index, archs[0]["resolution"]).contiguous(memory_format=fmt)
                        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                            soft = teacher_net(x).float()  # (B, classes)
                    for i, arch in enumerate(archs):
                        x = inputs.train_batch(index, arch["resolution"]).contiguous(memory_format=fmt)  # (B, C, r, r)
                        # DDP: gradients add up locally, the last sub-network's backward averages them over the ranks
                        sync = not distributed or i + 1 == len(archs)
                        with contextlib.nullcontext() if sync else model.no_sync():
                            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                                logits = model(x, arch)  # (B, classes)
                                loss = loss_fn(logits, y)
                                if config.distill and soft is not None:
                                    loss = loss + _soft_cross_entropy(logits, soft)
                            loss.backward()  # gradients of all sub-networks of the step add up
                        loss_sum += loss.detach().float()
                        if i == 0 and config.rule == "sandwich" and config.distill and len(archs) > 1:
                            soft = logits.detach().float()  # in-place distillation from the largest
                    if config.grad_clip is not None:
                        nn.utils.clip_grad_norm_(params, config.grad_clip)
                    opt.step()
                    sched.step()
                    result.steps += 1
                    result.subnets += len(archs)
                if distributed:
                    loss_sum = dist.all_reduce_mean([loss_sum])[0]  # the mean over the ranks' shards
                result.losses.append(loss_sum.item() / steps_per_epoch)
                result.phases.append(phase)
                if not math.isfinite(result.losses[-1]):
                    raise FloatingPointError(f"supernet training diverged (loss {result.losses[-1]}); lower lr (was {config.lr})")
                result.seconds = time.perf_counter() - started
                bar.update(1)
                bar.set_postfix(phase=phase, loss=f"{result.losses[-1]:.3f}")
                if checkpoint is not None and main:
                    done = epoch + 1 == epochs  # a finished phase resumes at the start of the next
                    _save_checkpoint(checkpoint, supernet, config, opt, sched, rng, order, result, teacher,
                                     phase_index + done, 0 if done else epoch + 1)
            trained_before += epochs
            state = None
    bar.close()
    supernet.eval()
    return result


def _save_checkpoint(path, supernet, config, opt, sched, rng, order, result, teacher, phase, epoch) -> None:
    """Everything `train_supernet(..., resume=True)` needs to go on exactly where it stopped;
    written to a temporary file and renamed, so a killed run never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "supernet": supernet.state_dict(),
        "space": dataclasses.asdict(supernet.space.config),
        "config": dataclasses.asdict(config),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rng.getstate(),
        "order": order.get_state(),
        "result": dataclasses.asdict(result),
        "teacher": teacher,
        "phase": phase,
        "epoch": epoch,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Saving a trained supernet
# --------------------------------------------------------------------------------------------


def save_supernet(supernet: Supernet, path: str | os.PathLike) -> Path:
    """Write the supernet's `state_dict` with its space's config (a plain dict), so that
    `load_supernet(path)` rebuilds it anywhere."""
    if not isinstance(supernet, Supernet):
        raise TypeError(f"supernet must be a Supernet, got {type(supernet).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"space": dataclasses.asdict(supernet.space.config), "state_dict": supernet.state_dict()}, path)
    return path


def load_supernet(path: str | os.PathLike, device: str | torch.device = "cpu") -> Supernet:
    """The supernet saved by `save_supernet`, on `device`, in eval mode."""
    document = torch.load(path, map_location=resolve_device(device), weights_only=False)
    if not isinstance(document, dict) or "space" not in document or "state_dict" not in document:
        raise ValueError(f"{path} is not a supernet saved by save_supernet")
    config = {k: _tuples(v) for k, v in document["space"].items()}
    supernet = Supernet(NetworkSpace(NetworkSpaceConfig(**config)))
    supernet.load_state_dict(document["state_dict"])
    return supernet.to(resolve_device(device)).eval()


def _tuples(value):
    """Lists back to tuples (dataclasses.asdict keeps tuples; a JSON round trip would not)."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value
