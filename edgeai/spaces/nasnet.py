"""The NASNet cell-level search space (Zoph et al. 2018; Lecture 11, "Cell-level Search Space").

A cell is built from B blocks. The controller constructs each block in five steps:

    Step 1  select a hidden state: h_i, h_{i-1}, or one created by an earlier block of the cell
    Step 2  select a second hidden state from the same options
    Step 3  select an operation to apply to the first hidden state   (M operations)
    Step 4  select an operation to apply to the second hidden state  (M operations)
    Step 5  select a method to combine the two results               (N methods: add, concat)

Under the lecture's assumption of 2 candidate inputs per step, the space holds
(2 · 2 · M · M · N)^B architectures: 4.5 x 10^15 for M = 13, N = 2, B = 5. With
`exact=True`, block b may also take the hidden states of the b blocks before it, as in NASNet:
Π_b ((2 + b)² · M² · N).

An architecture is a plain dict, e.g. {"block0.input1": 1, "block0.input2": 0,
"block0.op1": "sep_conv_3x3", "block0.op2": "identity", "block0.combine": "add", ...}. Hidden
states are numbered 0 = h_{i-1} (the output of the cell before the previous one), 1 = h_i (the
previous cell's output), 2 + b = the output of block b.

`build(arch)` returns the CIFAR-10 network of the NASNet figure: a stem, then N normal cells, a
reduction cell, N normal cells, a reduction cell, N normal cells, global pooling and a classifier.
The reduction cell uses the same blocks with stride 2 on the operations that read the cell's
inputs (as in NASNet and DARTS); channels double at each reduction.

NOTE: NASNet searches the normal and the reduction cell separately; the lecture's formula counts
one cell, so by default one searched cell serves as both (`separate_reduction=True` searches two,
squaring the size). NOTE: the paper's "concatenation" combiner doubles the channels of a block's
output; here it is followed by a 1x1 convolution back to C channels so that every hidden state has
the same width and may feed any later block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from edgeai.spaces.base import CategoricalSpace
from edgeai.spaces.ops import NASNET_OPS, FactorizedReduce, ReLUConvBN

__all__ = ["NASNetCellSpace", "nasnet_space_size", "NASNetConfig", "Cell", "NASNetNetwork", "COMBINERS"]

COMBINERS = ("add", "concat")


def nasnet_space_size(M: int = 13, N: int = 2, B: int = 5, num_inputs: int = 2, exact: bool = False) -> int:
    """Number of cells in the NASNet space.

    Lecture's assumption (`exact=False`): every step 1/2 picks among `num_inputs` candidates,
        size = (num_inputs · num_inputs · M · M · N)^B          (2, 13, 2, 5 → 4.5 x 10^15)
    `exact=True`: block b (from 0) may also pick the b hidden states created before it,
        size = Π_{b<B} ((num_inputs + b)² · M² · N)
    """
    for name, value in (("M", M), ("N", N), ("B", B), ("num_inputs", num_inputs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not exact:
        return (num_inputs * num_inputs * M * M * N) ** B
    return math.prod((num_inputs + b) ** 2 * M * M * N for b in range(B))


class NASNetCellSpace(CategoricalSpace):
    """The NASNet cell space as an ordered list of decisions, five per block."""

    def __init__(self, num_blocks: int = 5, ops: tuple[str, ...] | None = None,
                 combiners: tuple[str, ...] = COMBINERS, exact: bool = False,
                 separate_reduction: bool = False):
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive integer, got {num_blocks!r}")
        ops = tuple(NASNET_OPS) if ops is None else tuple(ops)
        unknown = [o for o in ops if o not in NASNET_OPS]
        if unknown or not ops:
            raise ValueError(f"unknown operation(s) {unknown}; NASNet operations: {list(NASNET_OPS)}")
        bad = [c for c in combiners if c not in COMBINERS]
        if bad or not combiners:
            raise ValueError(f"unknown combiner(s) {bad}; combiners: {list(COMBINERS)}")
        self.num_blocks, self.ops, self.combiners = num_blocks, ops, tuple(combiners)
        self.exact, self.separate_reduction = exact, separate_reduction
        self.cells = ("normal", "reduce") if separate_reduction else ("",)
        decisions = []
        for cell in self.cells:
            prefix = f"{cell}." if cell else ""
            for b in range(num_blocks):
                inputs = tuple(range(2 + b)) if exact else (0, 1)
                decisions += [
                    (f"{prefix}block{b}.input1", inputs),  # step 1
                    (f"{prefix}block{b}.input2", inputs),  # step 2
                    (f"{prefix}block{b}.op1", ops),  # step 3
                    (f"{prefix}block{b}.op2", ops),  # step 4
                    (f"{prefix}block{b}.combine", self.combiners),  # step 5
                ]
        super().__init__(decisions)

    def size(self) -> int:
        one_cell = nasnet_space_size(len(self.ops), len(self.combiners), self.num_blocks, exact=self.exact)
        return one_cell ** len(self.cells)

    def blocks(self, arch: dict, cell: str = "normal") -> list[tuple[int, int, str, str, str]]:
        """The cell's blocks as (input1, input2, op1, op2, combine) tuples."""
        arch = self.validate(arch)
        prefix = f"{cell}." if self.separate_reduction else ""
        return [tuple(arch[f"{prefix}block{b}.{k}"] for k in ("input1", "input2", "op1", "op2", "combine"))
                for b in range(self.num_blocks)]

    def describe(self, arch: dict) -> str:
        """The cell in words, one block per line."""
        names = lambda i: ("h_{i-1}", "h_i")[i] if i < 2 else f"block{i - 2}"  # noqa: E731
        lines = []
        for cell in self.cells:
            if cell:
                lines.append(f"{cell} cell:")
            for b, (i1, i2, o1, o2, c) in enumerate(self.blocks(arch, cell or "normal")):
                lines.append(f"  block{b} = {c}({o1}({names(i1)}), {o2}({names(i2)}))")
        return "\n".join(lines)

    def build(self, arch: dict, config: "NASNetConfig | None" = None) -> "NASNetNetwork":
        """The NASNet CIFAR-10 network stacking this cell (see `NASNetConfig`)."""
        config = config or NASNetConfig()
        normal = self.blocks(arch, "normal")
        reduce = self.blocks(arch, "reduce") if self.separate_reduction else normal
        return NASNetNetwork(normal, reduce, config)


@dataclass(frozen=True)
class NASNetConfig:
    """The stacked network of the NASNet CIFAR-10 figure."""

    channels: int = 16  # C: channels of every hidden state in the first stage (doubles per reduction)
    cells_per_stage: int = 2  # N normal cells between reductions (NASNet CIFAR-10: 6)
    in_channels: int = 3  # 3 for CIFAR-10, 1 for the digits
    num_classes: int = 10
    stem_multiplier: int = 3  # stem output channels = stem_multiplier · C (as in NASNet/DARTS code)


class Cell(nn.Module):
    """One NASNet cell: B blocks over the hidden states h_{i-1}, h_i; the unused block outputs
    are concatenated into the cell's output."""

    def __init__(self, blocks, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        # make both inputs C channels at the same resolution
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.inputs = [(i1, i2) for i1, i2, *_ in blocks]
        self.combine = [comb for *_, comb in blocks]
        self.ops = nn.ModuleList()
        self.projections = nn.ModuleList()
        for i1, i2, o1, o2, comb in blocks:
            for i, o in ((i1, o1), (i2, o2)):
                stride = 2 if reduction and i < 2 else 1  # only the cell's inputs are reduced
                self.ops.append(NASNET_OPS[o](c, stride, True))
            self.projections.append(ReLUConvBN(2 * c, c, 1, 1, 0) if comb == "concat" else nn.Identity())
        used = {i for pair in self.inputs for i in pair}
        self.outputs = [2 + b for b in range(len(blocks)) if 2 + b not in used]  # unused hidden states
        self.multiplier = len(self.outputs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # (N, C, H, W) each
        for b, (i1, i2) in enumerate(self.inputs):
            x1 = self.ops[2 * b](states[i1])  # steps 1 and 3
            x2 = self.ops[2 * b + 1](states[i2])  # steps 2 and 4
            if self.combine[b] == "add":  # step 5
                h = x1 + x2
            else:
                h = self.projections[b](torch.cat([x1, x2], dim=1))  # (N, 2C, H', W') -> (N, C, H', W')
            states.append(h)
        return torch.cat([states[i] for i in self.outputs], dim=1)  # (N, multiplier·C, H', W')


class NASNetNetwork(nn.Module):
    """Stem → N normal → reduction → N normal → reduction → N normal → pool → classifier."""

    def __init__(self, normal, reduce, config: NASNetConfig):
        super().__init__()
        c = config.channels
        c_stem = config.stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, False
        self.cells = nn.ModuleList()
        for stage in range(3):
            if stage > 0:
                c *= 2
                cell = Cell(reduce, c_prev_prev, c_prev, c, reduction=True, reduction_prev=reduction_prev)
                self.cells.append(cell)
                c_prev_prev, c_prev, reduction_prev = c_prev, cell.multiplier * c, True
            for _ in range(config.cells_per_stage):
                cell = Cell(normal, c_prev_prev, c_prev, c, reduction=False, reduction_prev=reduction_prev)
                self.cells.append(cell)
                c_prev_prev, c_prev, reduction_prev = c_prev, cell.multiplier * c, False
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # (N, 3C, H, W)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(s1).flatten(1))  # (N, num_classes)
