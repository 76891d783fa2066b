"""The network-level search space: depth, width, kernel size and resolution (Lecture 11,
"Network-level Search Space"), in the style of once-for-all (Cai et al. 2019) and MCUNet's
TinyNAS (Lin et al. 2020), on MobileNetV2 inverted bottleneck blocks (Sandler et al. 2018).

    depth       blocks per stage           e.g. {2, 3, 4}       ("stage2.depth")
    width       global width multiplier    e.g. {0.5, 0.75, 1}  ("width")
    kernel      depthwise kernel per block {3, 5, 7}            ("stage2.block0.kernel")
    expand      expand ratio t per block   {3, 4, 6}            ("stage2.block0.expand")
    resolution  input resolution           {128, 160, 192, 224, 256} (the lecture's list)

An architecture is a flat dict, e.g. {"resolution": 160, "width": 0.75, "stage1.depth": 3,
"stage1.block0.kernel": 5, "stage1.block0.expand": 6, ...}. As in once-for-all, every stage
carries kernel/expand genes for its deepest setting; the genes of blocks beyond a stage's depth are
inactive: they do not change the network, so `size()` counts distinct networks, `key()` ignores
inactive genes, and `grid()` lists each network once.

The network (built by `build`, costed by `costs` without building it):

    stem          3x3 conv, stride 2 (stem_stride), BN, ReLU6        c = make_divisible(stem · width)
    first block   inverted residual t = 1, 3x3                        (MobileNetV2's first row)
    stage i       `depth` inverted residuals, the first with the stage's stride
    last conv     1x1 conv, BN, ReLU6 to `last_channels` (not narrowed below 1.0 width, as MobileNetV2)
    head          global average pool, linear classifier

`costs(arch)` adds up the blocks' analytic costs (`edgeai.blocks`): params, MACs and peak activation
memory, each equal to what `edgeai.efficiency.profile(build(arch))` measures.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from torch import nn

from edgeai.blocks import (
    ClassifierHead,
    ConvBNAct,
    Cost,
    InvertedResidual,
    classifier_head_cost,
    conv_bn_act_cost,
    inverted_residual_cost,
)
from edgeai.models import make_divisible
from edgeai.spaces.base import CategoricalSpace

__all__ = ["NetworkSpaceConfig", "NetworkSpace", "NetworkCosts"]


@dataclass(frozen=True)
class NetworkSpaceConfig:
    """What the network-level space may choose, and the fixed frame around the choices."""

    stages: tuple[tuple[int, int], ...] = ((24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1))  # c, s per stage (MobileNetV2 Table 2)
    depths: tuple[int, ...] = (2, 3, 4)  # blocks per stage (once-for-all)
    kernels: tuple[int, ...] = (3, 5, 7)  # depthwise kernel sizes (once-for-all)
    expand_ratios: tuple[int, ...] = (3, 4, 6)  # t (once-for-all)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0)  # width multipliers
    resolutions: tuple[int, ...] = (128, 160, 192, 224, 256)  # the lecture's resolution list (once-for-all)
    stem_channels: int = 32  # MobileNetV2's first conv
    stem_stride: int = 2  # MobileNetV2: 2 (224 -> 112); 1 for the tiny 8-32 px digits
    first_block_channels: int = 16  # MobileNetV2's t = 1 row
    last_channels: int = 1280  # MobileNetV2's last 1x1 conv (0: no last conv)
    in_channels: int = 3
    num_classes: int = 1000
    divisor: int = 8  # channels rounded to multiples of this (MobileNetV2's make_divisible)

    @classmethod
    def mobilenet_v2(cls, **changes) -> "NetworkSpaceConfig":
        """The once-for-all-style space on MobileNetV2 at ImageNet scale (the default)."""
        return cls(**changes)

    @classmethod
    def mcunet(cls, **changes) -> "NetworkSpaceConfig":
        """TinyNAS-style space for microcontrollers (Lin et al. 2020): narrow widths, small inputs."""
        base = dict(widths=(0.3, 0.4, 0.5, 0.6, 0.7), resolutions=(96, 112, 128, 144, 160, 176),
                    last_channels=0)
        return cls(**{**base, **changes})

    @classmethod
    def digits(cls, **changes) -> "NetworkSpaceConfig":
        """A small space for the 8x8 handwritten digits (upsampled to 16 or 32): runs on a laptop."""
        base = dict(stages=((16, 1), (24, 2), (32, 2)), depths=(1, 2, 3), kernels=(3, 5, 7),
                    expand_ratios=(2, 4, 6), widths=(0.5, 0.75, 1.0, 1.5, 2.0), resolutions=(8, 16, 32),
                    stem_channels=16, stem_stride=1, first_block_channels=8, last_channels=0,
                    in_channels=1, num_classes=10, divisor=4)
        return cls(**{**base, **changes})


@dataclass(frozen=True)
class NetworkCosts:
    """Analytic costs of an architecture, for one input (batch size 1)."""

    params: int  # every parameter element
    macs: int
    peak_activations: int  # elements held at once at the peak (profile's definition)
    activations: int  # total output activations of the convolution blocks and head (for energy)
    resolution: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def as_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "flops": self.flops,
                "peak_activations": self.peak_activations, "activations": self.activations,
                "resolution": self.resolution}


class NetworkSpace(CategoricalSpace):
    """Depth, width, kernel size, expand ratio and resolution over MobileNetV2 blocks."""

    def __init__(self, config: NetworkSpaceConfig | None = None, **changes):
        config = config or NetworkSpaceConfig()
        if changes:
            config = NetworkSpaceConfig(**{**config.__dict__, **changes})
        self.config = config
        for name in ("depths", "kernels", "expand_ratios", "widths", "resolutions", "stages"):
            if not getattr(config, name):
                raise ValueError(f"config.{name} must not be empty")
        if any(d < 1 for d in config.depths):
            raise ValueError(f"config.depths must be positive, got {config.depths}")
        decisions = [("resolution", config.resolutions), ("width", config.widths)]
        for i, _ in enumerate(config.stages, start=1):
            decisions.append((f"stage{i}.depth", config.depths))
            for j in range(max(config.depths)):
                decisions.append((f"stage{i}.block{j}.kernel", config.kernels))
                decisions.append((f"stage{i}.block{j}.expand", config.expand_ratios))
        super().__init__(decisions)

    # ------------------------------------------------------------------ distinct networks

    def size(self) -> int:
        """Distinct networks: |resolutions| · |widths| · Π_stages Σ_depth (|kernels| · |expands|)^depth."""
        c = self.config
        per_block = len(c.kernels) * len(c.expand_ratios)
        per_stage = sum(per_block**d for d in c.depths)
        return len(c.resolutions) * len(c.widths) * per_stage ** len(c.stages)

    def active(self, arch: dict) -> dict:
        """The architecture with every inactive gene set to its first option (one canonical
        form per distinct network)."""
        arch = self.validate(arch)
        out = dict(arch)
        for i, _ in enumerate(self.config.stages, start=1):
            for j in range(arch[f"stage{i}.depth"], max(self.config.depths)):
                out[f"stage{i}.block{j}.kernel"] = self.config.kernels[0]
                out[f"stage{i}.block{j}.expand"] = self.config.expand_ratios[0]
        return out

    def key(self, arch: dict) -> str:
        return super().key(self.active(arch))

    def grid(self):
        """Every distinct network once (inactive genes at their first option)."""
        c = self.config
        blocks = list(itertools.product(c.kernels, c.expand_ratios))
        stage_choices = []
        for i, _ in enumerate(c.stages, start=1):
            choices = []
            for d in c.depths:
                for combo in itertools.product(blocks, repeat=d):
                    genes = {f"stage{i}.depth": d}
                    for j in range(max(c.depths)):
                        k, e = combo[j] if j < d else (c.kernels[0], c.expand_ratios[0])
                        genes[f"stage{i}.block{j}.kernel"] = k
                        genes[f"stage{i}.block{j}.expand"] = e
                    choices.append(genes)
            stage_choices.append(choices)
        for r, w in itertools.product(c.resolutions, c.widths):
            for stages in itertools.product(*stage_choices):
                arch = {"resolution": r, "width": w}
                for genes in stages:
                    arch.update(genes)
                yield {n: arch[n] for n in self.names}

    def describe(self, arch: dict) -> str:
        """The architecture in one line: resolution, width, then each stage's blocks as k/t."""
        arch = self.validate(arch)
        stages = []
        for i, _ in enumerate(self.config.stages, start=1):
            blocks = [f"k{arch[f'stage{i}.block{j}.kernel']}t{arch[f'stage{i}.block{j}.expand']}"
                      for j in range(arch[f"stage{i}.depth"])]
            stages.append(f"[{' '.join(blocks)}]")
        return f"r{arch['resolution']} w{arch['width']} " + " ".join(stages)

    # ------------------------------------------------------------------ the network

    def layout(self, arch: dict) -> list[tuple]:
        """The network as rows: ("stem", c_out, stride) / ("block", c_in, c_out, t, k, s) / ("last", c_in, c_out) / ("head", c_in)."""
        arch = self.validate(arch)
        c = self.config
        w = arch["width"]
        width = lambda channels: make_divisible(channels * w, c.divisor)  # noqa: E731
        rows = []
        c_prev = width(c.stem_channels)
        rows.append(("stem", c.in_channels, c_prev, c.stem_stride))
        first = width(c.first_block_channels)
        rows.append(("block", c_prev, first, 1, 3, 1))
        c_prev = first
        for i, (channels, stride) in enumerate(c.stages, start=1):
            c_out = width(channels)
            for j in range(arch[f"stage{i}.depth"]):
                t, k = arch[f"stage{i}.block{j}.expand"], arch[f"stage{i}.block{j}.kernel"]
                rows.append(("block", c_prev, c_out, t, k, stride if j == 0 else 1))
                c_prev = c_out
        if c.last_channels:
            last = make_divisible(c.last_channels * max(1.0, w), c.divisor)
            rows.append(("last", c_prev, last))
            c_prev = last
        rows.append(("head", c_prev))
        return rows

    def build(self, arch: dict) -> nn.Sequential:
        """The network for `arch` (expects inputs of shape (N, in_channels, resolution, resolution))."""
        layers = []
        for row in self.layout(arch):
            kind = row[0]
            if kind == "stem":
                layers.append(ConvBNAct(row[1], row[2], 3, row[3], activation="relu6"))
            elif kind == "block":
                _, c_in, c_out, t, k, s = row
                layers.append(InvertedResidual(c_in, c_out, stride=s, expand_ratio=t, kernel_size=k))
            elif kind == "last":
                layers.append(ConvBNAct(row[1], row[2], 1, activation="relu6"))
            else:
                layers.append(ClassifierHead(row[1], self.config.num_classes))
        return nn.Sequential(*layers)

    def costs(self, arch: dict) -> NetworkCosts:
        """Params, MACs and peak activation memory, analytically (no model is built); equal to
        what `profile(build(arch), (1, in_channels, r, r))` measures."""
        r = self.validate(arch)["resolution"]
        h = w = r
        total: Cost | None = None
        activations = 0
        for row in self.layout(arch):
            kind = row[0]
            if kind == "stem":
                cost = conv_bn_act_cost(row[1], row[2], 3, row[3], h, w)
            elif kind == "block":
                _, c_in, c_out, t, k, s = row
                cost = inverted_residual_cost(c_in, c_out, t, k, s, h, w)
            elif kind == "last":
                cost = conv_bn_act_cost(row[1], row[2], 1, 1, h, w)
            else:
                cost = classifier_head_cost(row[1], h, w, self.config.num_classes)
            total = cost if total is None else total.then(cost)
            if len(cost.out_shape) == 3:
                _, h, w = cost.out_shape
            activations += _numel(cost.out_shape)
        return NetworkCosts(total.params, total.macs, total.peak_activations, activations, r)

    def input_shape(self, arch: dict) -> tuple[int, int, int, int]:
        r = self.validate(arch)["resolution"]
        return (1, self.config.in_channels, r, r)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n

