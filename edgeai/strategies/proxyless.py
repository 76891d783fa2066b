"""ProxylessNAS: gradient-based search with a latency loss (Cai, Zhu & Han, ICLR 2019), Lecture 11,
"Search Strategy: Gradient Descent, ProxylessNAS".

"Is it also possible to take latency into account for gradient-based search?" ProxylessNAS
searches a chain of layers (not a cell), each a choice among candidate operations with its own
architecture parameters α, and makes latency differentiable with a lookup table F:

1. Candidates (Section 4, and the code's `conv_candidates`): MBConv blocks (MobileNetV2's inverted
   residual) with kernel 3/5/7 and expansion ratio 3/6, plus 'skip' (the paper's zero operation)
   in layers with a residual connection, so the search can also choose the depth. `CANDIDATES`.
   The network is the paper's table of stages, `# c, n, s` rows as MobileNetV2 writes them.
   `ProxylessSpace` (the search space as plain data, `build(arch)` → the stand-alone network).

2. Expected latency (Section 3.3): with p = softmax(α) of layer l and F(o) the latency of
   operation o in the lookup table measured on the target device,

       E[latency_l] = Σ_i p_i^l · F(o_i^l),        E[LAT] = Σ_l E[latency_l]        `expected_latency`

   differentiable in α: ∂E[latency_l] / ∂α_i^l = p_i^l · (F(o_i^l) − E[latency_l]).
   The table: `edgeai.estimation.latency` (one entry per candidate and input shape, measured on
   the device, or given), `latency_table(space, ...)`.

3. Latency-regularised losses, `latency_loss`, both forms of the paper and its code:
       "add":  Loss_CE + λ · (E[LAT] − T) / T     (Section 3.3: Loss = Loss_CE + λ1‖w‖² + λ2 E[LAT],
                                                   with λ2 = λ / T; the code's 'add#linear'; ‖w‖² is
                                                   the optimizer's weight decay)
       "mul":  α_r · Loss_CE · (log E[LAT] / log T)^β   (the code's 'mul#log', its default, with
                                                   α_r = 0.2, β = 0.3; MnasNet-like)
   T is the latency target (`ProxylessConfig.target_latency`).

4. Binarized paths (Section 3.2, Eq. 2-4). Instead of running every candidate (DARTS), one path is
   active per step: binary gates g = one-hot(i) with i ~ p. The weight step trains the active
   path only (α fixed); the architecture step (w fixed) estimates ∂L/∂α through the gates:

       ∂L/∂α_i = Σ_j ∂L/∂p_j · ∂p_j/∂α_i ≈ Σ_j ∂L/∂g_j · p_j (δ_ij − p_i)            (Eq. 4)

   with ∂L/∂g_j = ⟨∂L/∂output, o_j(x)⟩. `BinaryGate` is that estimator as an autograd function;
   `MixedLayer` runs the active path with its graph and the others without (the code's
   'full_v2' mode computes them again in the backward pass instead, to save memory).

`ProxylessSearch` holds one search; `proxyless_search(data, ProxylessConfig(...), seed=...)` runs
it and returns the derived architecture (each layer's most probable candidate) per epoch.

NOTE: departures from the official code: the cosine learning rate steps once per epoch (the code
steps per batch); with 'skip' sampled the code leaves that layer's α without gradient, here Eq. 4
applies as for any candidate (⟨∂L/∂out, 0⟩ = 0 for the skip path's own term); choosing the path
to run needs its index on the host, so the search synchronises once per step on a GPU (as the
code does).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeai.blocks import ClassifierHead, ConvBNAct, InvertedResidual
from edgeai.data import Dataset, Split, batches
from edgeai.efficiency import conv_output_size
from edgeai.estimation.latency import build_latency_table, op_key
from edgeai.estimation.train import evaluate_accuracy, num_threads, resolve_device
from edgeai.spaces.base import CategoricalSpace
from edgeai.spaces.ops import Identity
from edgeai.strategies.gradient import GradientSearchResult, run_epochs

__all__ = [
    "CANDIDATES",
    "SKIP",
    "ProxylessConfig",
    "ProxylessSpace",
    "MixedLayer",
    "ProxylessSupernet",
    "BinaryGate",
    "expected_latency",
    "latency_loss",
    "latency_table",
    "ProxylessSearch",
    "proxyless_search",
]

# Candidate operations: name -> (expansion ratio t, kernel size k) of an MBConv block
# (the code's '3x3_MBConv3', '3x3_MBConv6', '5x5_MBConv3', ... '7x7_MBConv6').
CANDIDATES: dict[str, tuple[int, int]] = {
    "mb3_k3": (3, 3),
    "mb6_k3": (6, 3),
    "mb3_k5": (3, 5),
    "mb6_k5": (6, 5),
    "mb3_k7": (3, 7),
    "mb6_k7": (6, 7),
}
SKIP = "skip"  # the paper's zero operation: the block is left out, its residual connection carries x
LOSSES = ("add", "mul", "none")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class ProxylessConfig:
    """One ProxylessNAS search. Defaults: the official code's ImageNet search
    (`search/imagenet_arch_search.py`): its supernet, training and gradient-mode settings."""

    # the supernet
    stem_channels: int = 32  # 3x3 conv at the input
    stem_stride: int = 2
    first_channels: int = 16  # a fixed 3x3 MBConv (t = 1) after the stem, as MobileNetV2 (0: none)
    stages: tuple[tuple[int, int, int], ...] = (  # c, n, s (width_stages, n_cell_stages, stride_stages)
        (24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1),
    )
    feature_channels: int = 1280  # 1x1 conv before pooling (0: none)
    candidates: tuple[str, ...] = tuple(CANDIDATES)  # candidate MBConvs of every searchable layer
    skip: bool = True  # add 'skip' to the layers with a residual connection (stride 1, c_in = c_out)
    # training: weights
    epochs: int = 160  # all epochs, warm-up included (the code: 40 warm-up + 120 search)
    warmup_epochs: int = 40  # the first epochs train only the weights (paths drawn from the initial α)
    batch_size: int = 256
    lr: float = 0.025  # SGD on w, cosine to 0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    # training: architecture
    arch_lr: float = 1e-3  # Adam on α
    arch_betas: tuple[float, float] = (0.0, 0.999)
    arch_eps: float = 1e-8
    arch_weight_decay: float = 0.0
    arch_every: int = 5  # one α step every `arch_every` weight steps (grad_update_arch_param_every)
    arch_init: float = 1e-3  # α ~ N(0, arch_init²) (arch_init_ratio)
    # the latency loss
    loss: str = "mul"  # "add", "mul" or "none" (accuracy only)
    reg_lambda: float = 0.1  # λ of "add"
    reg_alpha: float = 0.2  # α_r of "mul"
    reg_beta: float = 0.3  # β of "mul"
    target_latency: float | None = None  # T in the table's unit; None: E[LAT] of the initial (uniform) α
    train_portion: float = 0.5  # fraction of the training split for w; the rest trains α
    autocast: bool | None = None  # bf16 autocast of the forward passes; None: on for CUDA
    channels_last: bool = False

    def __post_init__(self):
        self.stages = tuple(tuple(int(v) for v in row) for row in self.stages)
        self.candidates = tuple(self.candidates)
        self.arch_betas = tuple(self.arch_betas)
        for name in ("stem_channels", "stem_stride", "epochs", "batch_size", "arch_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProxylessConfig.{name} must be a positive integer, got {value!r}")
        for name in ("first_channels", "feature_channels", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ProxylessConfig.{name} must be a non-negative integer, got {value!r}")
        if not self.stages or any(len(row) != 3 or min(row) < 1 for row in self.stages):
            raise ValueError(f"ProxylessConfig.stages must be (c, n, s) rows of positive integers, got {self.stages}")
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise ValueError(f"ProxylessConfig.candidates must be names of {list(CANDIDATES)}, got {list(self.candidates)}")
        if self.loss not in LOSSES:
            raise ValueError(f"ProxylessConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("lr", "arch_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ProxylessConfig.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("reg_lambda", "reg_alpha", "reg_beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ProxylessConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.target_latency is not None and not self.target_latency > 0:
            raise ValueError(f"ProxylessConfig.target_latency must be positive or None, got {self.target_latency!r}")
        if not 0 < self.train_portion < 1:
            raise ValueError(f"ProxylessConfig.train_portion must be strictly between 0 and 1, got {self.train_portion!r}")


# --------------------------------------------------------------------------------------------
# 1. The search space: a chain of layers, each a choice among candidate blocks
# --------------------------------------------------------------------------------------------


def make_candidate(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One candidate block: an MBConv (with its residual when stride 1 and c_in = c_out) or skip."""
    if name == SKIP:
        if stride != 1 or c_in != c_out:
            raise ValueError(f"'skip' needs stride 1 and c_in = c_out, got stride {stride}, {c_in} -> {c_out}")
        return Identity()
    if name not in CANDIDATES:
        raise ValueError(f"unknown candidate {name!r}; candidates: {list(CANDIDATES)} and {SKIP!r}")
    t, k = CANDIDATES[name]
    return InvertedResidual(c_in, c_out, stride, expand_ratio=t, kernel_size=k)


@dataclass(frozen=True)
class Layer:
    """A searchable layer: where it sits and what it may be."""

    c_in: int
    c_out: int
    stride: int
    input_shape: tuple[int, int, int, int]  # (1, c_in, h, w): the shape its latency is measured at
    options: tuple[str, ...]  # its candidates (with 'skip' first where allowed)

    def key(self, name: str) -> str:
        """The latency-table key of candidate `name` in this layer, e.g. 'mb6_k5_c24_s2@1x16x8x8'."""
        return op_key(f"{name}_c{self.c_out}_s{self.stride}", self.input_shape)


class ProxylessSpace(CategoricalSpace):
    """The ProxylessNAS search space as plain data: one decision per searchable layer
    ("layer0", "layer1", ... with the candidate names as options); `build(arch)` gives the
    stand-alone network: stem, fixed first block, the chosen blocks, feature conv, classifier."""

    def __init__(self, config: ProxylessConfig, input_shape: Sequence[int], num_classes: int):
        if not isinstance(config, ProxylessConfig):
            raise TypeError(f"config must be a ProxylessConfig, got {type(config).__name__}")
        self.config = config
        self.input_shape = tuple(int(v) for v in input_shape)  # (C, H, W)
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
        self.num_classes = num_classes
        c, h, w = self.input_shape
        h, w = (conv_output_size(s, 3, config.stem_stride, 1) for s in (h, w))
        c = config.stem_channels
        self.fixed_keys = [op_key(f"stem_c{c}_s{config.stem_stride}", (1, *self.input_shape))]
        self.first_shape = (1, c, h, w)  # the fixed first block's input
        if config.first_channels:
            self.fixed_keys.append(op_key(f"first_c{config.first_channels}", self.first_shape))
            c = config.first_channels
        self.layers: list[Layer] = []
        for c_out, n, s in config.stages:  # c, n, s
            for i in range(n):
                stride = s if i == 0 else 1
                options = tuple(config.candidates)
                if config.skip and stride == 1 and c == c_out:
                    options = (SKIP, *options)
                self.layers.append(Layer(c, c_out, stride, (1, c, h, w), options))
                h, w = (conv_output_size(v, 3, stride, 1) for v in (h, w))
                c = c_out
        self.final_shape = (1, c, h, w)
        self.fixed_keys.append(op_key(f"head_c{config.feature_channels}_n{num_classes}", self.final_shape))
        super().__init__([(f"layer{i}", layer.options) for i, layer in enumerate(self.layers)])

    # the parts every network of the space shares
    def stem(self) -> nn.Module:
        return ConvBNAct(self.input_shape[0], self.config.stem_channels, 3, self.config.stem_stride, activation="relu6")

    def first(self) -> nn.Module | None:
        if not self.config.first_channels:
            return None
        return InvertedResidual(self.config.stem_channels, self.config.first_channels, 1, expand_ratio=1, kernel_size=3)

    def head(self) -> nn.Module:
        c = self.final_shape[1]
        layers = []
        if self.config.feature_channels:
            layers.append(ConvBNAct(c, self.config.feature_channels, 1, activation="relu6"))
            c = self.config.feature_channels
        layers.append(ClassifierHead(c, self.num_classes))
        return nn.Sequential(*layers)

    def build(self, arch: dict) -> nn.Sequential:
        """The stand-alone network of an architecture (skipped layers left out)."""
        arch = self.validate(arch)
        blocks = [("stem", self.stem())]
        if self.first() is not None:
            blocks.append(("first", self.first()))
        for i, layer in enumerate(self.layers):
            name = arch[f"layer{i}"]
            if name != SKIP:
                blocks.append((f"layer{i}", make_candidate(name, layer.c_in, layer.c_out, layer.stride)))
        blocks.append(("head", self.head()))
        return nn.Sequential(OrderedDict(blocks))

    def latency_keys(self, arch: dict) -> list[str]:
        """The table entries an architecture's latency is the sum of (fixed parts included)."""
        arch = self.validate(arch)
        return self.fixed_keys + [layer.key(arch[f"layer{i}"]) for i, layer in enumerate(self.layers)]

    def latency(self, arch: dict, table: dict) -> float:
        """The lookup-table latency of an architecture: Σ of its entries (fixed parts included)."""
        missing = [k for k in self.latency_keys(arch) if k not in table]
        if missing:
            raise KeyError(f"latency table has no entries {missing}; build it with latency_table(space)")
        return float(sum(table[k] for k in self.latency_keys(arch)))


def latency_table(space: ProxylessSpace, device: str | torch.device = "cpu", warmup: int = 5, repeats: int = 20,
                  threads: int | None = None, progress: bool = True) -> dict:
    """Measure every candidate of every layer (and the fixed parts) on `device` at batch size 1:
    `{op key: median ms}` (`edgeai.estimation.latency.build_latency_table`). Layers with the same
    shape and candidate share one entry."""
    candidates, seen = [], set()

    def add(key: str, module: nn.Module, shape):
        if key not in seen:
            seen.add(key)
            candidates.append((key.split("@")[0], module, shape))

    add(space.fixed_keys[0], space.stem(), (1, *space.input_shape))
    if space.first() is not None:
        add(space.fixed_keys[1], space.first(), space.first_shape)
    for layer in space.layers:
        for name in layer.options:
            add(layer.key(name), make_candidate(name, layer.c_in, layer.c_out, layer.stride), layer.input_shape)
    add(space.fixed_keys[-1], space.head(), space.final_shape)
    return build_latency_table(candidates, device, warmup=warmup, repeats=repeats, threads=threads, progress=progress)


# --------------------------------------------------------------------------------------------
# 2.-3. Expected latency and the latency-regularised losses
# --------------------------------------------------------------------------------------------


def expected_latency(alphas: Sequence[torch.Tensor], latencies: Sequence[torch.Tensor]) -> torch.Tensor:
    """E[LAT] = Σ_l Σ_i softmax(α^l)_i · F(o_i^l): for every layer l the architecture weights α^l
    and the lookup-table latencies F^l of its candidates (same length)."""
    if len(alphas) != len(latencies) or not alphas:
        raise ValueError(f"give one α and one latency vector per layer, got {len(alphas)} and {len(latencies)}")
    total = 0.0
    for l, (alpha, lat) in enumerate(zip(alphas, latencies)):
        if alpha.shape != lat.shape or alpha.dim() != 1:
            raise ValueError(f"layer {l}: α {tuple(alpha.shape)} and F {tuple(lat.shape)} must be vectors of the same length")
        total = total + (F.softmax(alpha, dim=0) * lat).sum()  # E[latency_l]
    return total


def latency_loss(ce: torch.Tensor, expected: torch.Tensor, kind: str = "add", target: float = 1.0,
                 reg_lambda: float = 0.1, reg_alpha: float = 0.2, reg_beta: float = 0.3) -> torch.Tensor:
    """The latency-regularised loss of the architecture step (see the module docstring):
    "add": CE + λ (E[LAT] − T) / T;   "mul": α_r · CE · (log E[LAT] / log T)^β;   "none": CE."""
    if kind not in LOSSES:
        raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")
    if not target > 0:
        raise ValueError(f"target latency must be positive, got {target!r}")
    if kind == "none":
        return ce
    if kind == "add":
        return ce + reg_lambda * (expected - target) / target
    if not target > 1:  # and E[LAT] > 1: not checked here (it would wait for the device)
        raise ValueError(f"the multiplicative loss needs latencies above 1 in the table's unit (log must be "
                         f"positive), got target {target}; scale the table (e.g. ms -> µs) or use kind='add'")
    return reg_alpha * ce * (torch.log(expected) / math.log(target)) ** reg_beta


# --------------------------------------------------------------------------------------------
# 4. Binarized paths: the supernet
# --------------------------------------------------------------------------------------------


class BinaryGate(torch.autograd.Function):
    """g = one-hot(active) forward; backward: ∂L/∂α_i = Σ_j ∂L/∂g_j · p_j (δ_ij − p_i), p = softmax(α)
    (Eq. 4: the gradient through the binary gates, used as if it were the one through p)."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, active: int) -> torch.Tensor:
        probs = F.softmax(alpha.detach(), dim=0)
        ctx.save_for_backward(probs)
        gates = torch.zeros_like(alpha)
        gates[active] = 1.0
        return gates

    @staticmethod
    def backward(ctx, grad_gates: torch.Tensor):
        (p,) = ctx.saved_tensors
        # Σ_j ∂L/∂g_j p_j (δ_ij − p_i) = p_i ∂L/∂g_i − p_i Σ_j ∂L/∂g_j p_j
        return p * (grad_gates - (grad_gates * p).sum()), None


class MixedLayer(nn.Module):
    """All candidates of one layer, one active at a time (set by the searcher):

    - `gates is None`: only the active path runs (the weight step, evaluation);
    - `gates` set (the architecture step): output = Σ_j g_j · o_j(x) with g one-hot, the active
      path with its graph and the others without gradient, so ∂L/∂g_j = ⟨∂L/∂output, o_j(x)⟩.
    """

    def __init__(self, layer: Layer, arch_init: float = 1e-3):
        super().__init__()
        self.options = layer.options
        self.candidates = nn.ModuleList(make_candidate(n, layer.c_in, layer.c_out, layer.stride) for n in layer.options)
        self.alpha = nn.Parameter(arch_init * torch.randn(len(layer.options)))
        self.active = 0
        self.gates: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gates is None:
            return self.candidates[self.active](x)  # (N, c_out, H/s, W/s)
        out = 0
        for j, op in enumerate(self.candidates):
            if j == self.active:
                out = out + self.gates[j] * op(x)
            else:
                with torch.no_grad():
                    o_j = op(x)
                out = out + self.gates[j] * o_j  # gradient to g_j only
        return out


class ProxylessSupernet(nn.Module):
    """Stem, fixed first block, one `MixedLayer` per searchable layer, head."""

    def __init__(self, space: ProxylessSpace):
        super().__init__()
        self.stem = space.stem()
        self.first = space.first() or Identity()
        self.layers = nn.ModuleList(MixedLayer(layer, space.config.arch_init) for layer in space.layers)
        self.head = space.head()

    def arch_parameters(self) -> list[nn.Parameter]:
        return [layer.alpha for layer in self.layers]

    def weights(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))  # (N, c, H', W')
        for layer in self.layers:
            x = layer(x)
        return self.head(x)  # (N, classes)


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


class ProxylessSearch:
    """One ProxylessNAS search in progress (the code's `ArchSearchRunManager`, gradient mode).

    Each step: draw one path per layer from p = softmax(α) and take an SGD step on the weights of
    those paths (training loss); every `arch_every` steps, after the warm-up epochs, draw new
    paths and take an Adam step on α with the latency-regularised loss on a batch of the α half.
    Created from `seed` on the CPU, then moved to `device` (chosen once, by the caller); path
    sampling uses a CPU generator seeded from `seed`. `state_dict()` holds everything.
    """

    def __init__(self, space: ProxylessSpace, table: dict, seed: int, device: str | torch.device = "cpu"):
        if not isinstance(space, ProxylessSpace):
            raise TypeError(f"space must be a ProxylessSpace, got {type(space).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.space, self.config, self.seed = space, space.config, seed
        cfg = self.config
        self.device = resolve_device(device)
        self.autocast = self.device.type == "cuda" if cfg.autocast is None else bool(cfg.autocast)
        needed = list(space.fixed_keys) + [layer.key(n) for layer in space.layers for n in layer.options]
        missing = sorted({k for k in needed if k not in table})
        if missing:
            raise KeyError(f"the latency table lacks {len(missing)} entries, e.g. {missing[:3]}; "
                           f"measure it with latency_table(space)")
        self.table = dict(table)
        self.fixed_latency = float(sum(table[k] for k in space.fixed_keys))
        self.latencies = [torch.tensor([table[layer.key(n)] for n in layer.options], device=self.device)
                          for layer in space.layers]  # F^l per layer
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = ProxylessSupernet(space)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.w_optimizer = torch.optim.SGD(self.model.weights(), lr=cfg.lr, momentum=cfg.momentum,
                                           nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, T_max=cfg.epochs)
        self.a_optimizer = torch.optim.Adam(self.model.arch_parameters(), lr=cfg.arch_lr, betas=cfg.arch_betas,
                                            eps=cfg.arch_eps, weight_decay=cfg.arch_weight_decay)
        self.paths = torch.Generator().manual_seed(seed)  # binary gates
        self.w_order = torch.Generator().manual_seed(seed + 1)
        self.a_order = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            initial = float(self.expected_latency())
        self.target = initial if cfg.target_latency is None else cfg.target_latency
        fastest = self.fixed_latency + sum(float(f.min()) for f in self.latencies)  # the lowest E[LAT] can go
        if cfg.loss == "mul" and not (self.target > 1 and fastest > 1):
            raise ValueError(f"loss='mul' takes log(E[LAT]) / log(T): latencies must stay above 1 in the table's "
                             f"unit, got T = {self.target:.4g} and a fastest network of {fastest:.4g}; scale the "
                             f"table (e.g. ms -> µs) or use loss='add'")
        self.epoch = 0

    def expected_latency(self) -> torch.Tensor:
        """E[LAT] of the current α: fixed parts + Σ_l Σ_i p_i^l F(o_i^l)."""
        return self.fixed_latency + expected_latency(self.model.arch_parameters(), self.latencies)

    def _sample(self, gates: bool) -> None:
        """Draw one path per layer from softmax(α) (one device→host copy of all α)."""
        alphas = self.model.arch_parameters()
        flat = torch.cat([a.detach() for a in alphas]).float().cpu()
        start = 0
        for layer, alpha in zip(self.model.layers, alphas):
            probs = F.softmax(flat[start : start + alpha.numel()], dim=0)
            start += alpha.numel()
            layer.active = int(torch.multinomial(probs, 1, generator=self.paths))
            layer.gates = BinaryGate.apply(alpha, layer.active) if gates else None

    def _argmax(self) -> None:
        for layer in self.model.layers:
            layer.active, layer.gates = int(layer.alpha.detach().argmax()), None

    def _prepare(self, split: Split) -> Split:
        split = split.to(self.device)
        if self.config.channels_last:
            split = Split(split.x.contiguous(memory_format=torch.channels_last), split.y)
        return split

    def _ce(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(x)
            return F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing), logits

    def train_epoch(self, w_split: Split, a_split: Split) -> dict:
        cfg = self.config
        w_split, a_split = self._prepare(w_split), self._prepare(a_split)
        batch_size = min(cfg.batch_size, len(w_split), len(a_split))
        search_alpha = self.epoch >= cfg.warmup_epochs
        lr = self.scheduler.get_last_lr()[0]
        a_batches = batches(a_split, batch_size, rng=self.a_order, drop_last=True)
        self.model.train()
        sums = torch.zeros(3, device=self.device)  # w loss, w correct, α-step CE: summed on the device
        steps = arch_steps = 0
        for x, y in batches(w_split, batch_size, rng=self.w_order, drop_last=True):
            self._sample(gates=False)  # weight step: α fixed, one path per layer
            loss, logits = self._ce(x, y)
            self.w_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.w_optimizer.step()
            sums[:2] += torch.stack([loss.detach().float(), (logits.argmax(1) == y).sum().float()])
            steps += 1
            if search_alpha and steps % cfg.arch_every == 0:  # architecture step: w fixed
                try:
                    x_a, y_a = next(a_batches)
                except StopIteration:
                    a_batches = batches(a_split, batch_size, rng=self.a_order, drop_last=True)
                    x_a, y_a = next(a_batches)
                self._sample(gates=True)
                ce, _ = self._ce(x_a, y_a)
                loss = latency_loss(ce, self.expected_latency(), cfg.loss, self.target,
                                    cfg.reg_lambda, cfg.reg_alpha, cfg.reg_beta)
                self.a_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.a_optimizer.step()
                sums[2] += ce.detach().float()
                arch_steps += 1
        for layer in self.model.layers:
            layer.gates = None
        self.scheduler.step()
        self.epoch += 1
        total = sums.tolist()  # the epoch's one read of the sums
        return {
            "epoch": self.epoch,
            "train_loss": total[0] / max(steps, 1),
            "train_accuracy": total[1] / max(steps * batch_size, 1),
            "arch_ce": total[2] / arch_steps if arch_steps else float("nan"),
            "arch_steps": arch_steps,
            "lr": lr,
            "expected_latency": float(self.expected_latency().detach()),
            "latency": self.space.latency(self.derive(), self.table),
        }

    def evaluate(self, split: Split) -> float:
        """Accuracy of the derived architecture with the supernet's weights (most probable paths)."""
        self._argmax()
        return evaluate_accuracy(self.model, self._prepare(split), autocast=self.autocast)

    def derive(self) -> dict:
        """Each layer's most probable candidate (the paper: prune the redundant paths)."""
        return {f"layer{i}": layer.options[int(layer.alpha.detach().argmax())]
                for i, layer in enumerate(self.model.layers)}

    def arch_probabilities(self) -> dict:
        with torch.no_grad():
            return {f"layer{i}": dict(zip(layer.options, F.softmax(layer.alpha, 0).tolist()))
                    for i, layer in enumerate(self.model.layers)}

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.a_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "paths": self.paths.get_state(),
            "w_order": self.w_order.get_state(),
            "a_order": self.a_order.get_state(),
            "target": self.target,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.target = state["epoch"], state["target"]
        self.model.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.paths.set_state(state["paths"])
        self.w_order.set_state(state["w_order"])
        self.a_order.set_state(state["a_order"])


def proxyless_search(
    data: Dataset,
    config: ProxylessConfig | None = None,
    *,
    seed: int,
    table: dict | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    callback=None,
) -> GradientSearchResult:
    """Run ProxylessNAS on `data`. `table`: the latency lookup table `{op key: latency}` (see
    `ProxylessSpace.latency_keys`); None measures it on `device` first (`latency_table`). The
    result has one trial per epoch (the derived architecture, scored by its accuracy on `data.val`
    with the supernet's weights; metrics include its table latency and E[LAT]), `result.arch` and
    softmax(α) per epoch. Build the derived network with
    `ProxylessSpace(config, data.input_shape, data.num_classes).build(result.arch)`."""
    config = ProxylessConfig() if config is None else config
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be an edgeai.data.Dataset (e.g. digits()), got {type(data).__name__}")
    device = resolve_device(device)
    space = ProxylessSpace(config, data.input_shape, data.num_classes)
    with num_threads(threads):
        if table is None:
            table = latency_table(space, device, threads=threads, progress=progress)
        data = data.to(device)
        searcher = ProxylessSearch(space, table, seed, device)
        return run_epochs(searcher, data, config.epochs, name="ProxylessNAS", seed=seed, config=asdict(config),
                          train_portion=config.train_portion, checkpoint=checkpoint, resume=resume,
                          progress=progress, callback=callback)
