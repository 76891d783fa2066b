"""Predictors: estimate a candidate's accuracy and latency without training or running it
(Lecture 11, "Performance estimation" and ProxylessNAS's "F is a latency prediction model,
typically a regressor or a lookup table").

    kendall_tau(x, y)               rank correlation of two lists of scores (Kendall's tau-b):
                                    how well an estimate orders architectures like the truth
    AccuracyPredictor(space)        an MLP on the architecture encoding, trained on
                                    (architecture, accuracy) pairs (once-for-all's accuracy
                                    predictor, Cai et al. 2019, Section 3.3)
    LatencyPredictor(table, space)  the latency of a network as the sum of its layers' entries
                                    in a lookup table measured on the device (ProxylessNAS Eq. 4;
                                    once-for-all's latency lookup table)
    network_latency_table(space)    that table, for every distinct layer of a network space,
                                    measured on the current device

A search ranks candidates, so what matters about an estimate is whether it *orders* them like the
truth, not its absolute value: Kendall's tau counts concordant minus discordant pairs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from edgeai.efficiency import conv_output_size
from edgeai.estimation.train import num_threads
from edgeai.estimation.latency import (
    LatencyTable,
    TableCheck,
    build_latency_table,
    check_latency_table,
    op_key,
    table_latency,
)

__all__ = [
    "kendall_tau",
    "split_pairs",
    "PredictorConfig",
    "AccuracyPredictor",
    "LatencyPredictor",
    "layer_name",
    "network_layers",
    "network_latency_table",
]


# --------------------------------------------------------------------------------------------
# Rank correlation
# --------------------------------------------------------------------------------------------


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long lists (Kendall 1945; what `scipy.stats.kendalltau`
    computes by default):

        tau_b = (P - Q) / sqrt((P + Q + T_x) · (P + Q + T_y))

    over all pairs i < j: P concordant (x and y order the pair the same way), Q discordant
    (opposite ways), T_x tied in x only, T_y tied in y only (pairs tied in both count nowhere).
    Without ties it is (P - Q) / (n(n-1)/2): 1 for the same order, -1 for the reverse.
    NaN when one list is constant (no order to compare). O(n²): fine for the few hundred
    architectures a predictor is checked on."""
    x, y = _numbers("x", x), _numbers("y", y)
    if len(x) != len(y):
        raise ValueError(f"x and y must be equally long, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 pairs to rank, got {len(x)}")
    p = q = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                p += 1
            else:
                q += 1
    denominator = math.sqrt((p + q + tx) * (p + q + ty))
    return (p - q) / denominator if denominator else math.nan


def _numbers(name: str, values) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().flatten().tolist()
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from error
    if any(math.isnan(v) for v in out):
        raise ValueError(f"{name} contains NaN")
    return out


# --------------------------------------------------------------------------------------------
# Accuracy predictor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictorConfig:
    """The MLP and its training (once-for-all: 3 layers of 400 units on 16 K pairs; the
    defaults here suit the tens to hundreds of pairs a notebook can afford)."""

    hidden: tuple[int, ...] = (128, 128)  # widths of the hidden layers (ReLU between)
    epochs: int = 400  # passes over the pairs (full-batch Adam steps when batch_size is None)
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 1e-4  # L2 penalty: the pairs are few, the encoding is wide
    batch_size: int | None = None  # None: the whole training set in one batch
    seed: int = 0  # initial weights and batch order

    def __post_init__(self) -> None:
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive integers, got {self.hidden!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")


class AccuracyPredictor:
    """An MLP from `space.encode(arch)` to accuracy, trained on (architecture, accuracy) pairs.

        predictor = AccuracyPredictor(space).fit(archs, accuracies)
        predictor.predict(arch)                        # one number
        predictor.kendall_tau(held_out, their_accs)    # does it rank unseen architectures well?

    For a space with inactive genes (`space.active`, e.g. the blocks a stage's depth skips), the
    encoding is that of the canonical architecture, so genes that do not change the network do
    not add noise (once-for-all's encoding likewise zeroes the skipped blocks). Targets are
    standardised for training; predictions come back in the accuracies' units.
    """

    def __init__(self, space, config: PredictorConfig = PredictorConfig()):
        if not hasattr(space, "encode"):
            raise TypeError(f"space must be a search space with encode(arch), got {type(space).__name__}")
        if not isinstance(config, PredictorConfig):
            raise TypeError(f"config must be a PredictorConfig, got {type(config).__name__}")
        self.space, self.config = space, config
        gen = torch.Generator().manual_seed(config.seed)
        layers, width = [], space.encoding_size
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        with torch.no_grad():  # seeded initial weights (PyTorch's default init, drawn from `gen`)
            for m in self.mlp:
                if isinstance(m, nn.Linear):
                    bound = 1 / math.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.uniform_(-bound, bound, generator=gen)
        self.mean, self.std = 0.0, 1.0
        self.fitted = False
        self.losses: list[float] = []

    def encode(self, archs: Sequence[dict]) -> torch.Tensor:
        """(N, encoding_size) float tensor of the architectures' encodings."""
        canonical = getattr(self.space, "active", None)
        rows = [self.space.encode(canonical(a) if canonical else a) for a in archs]
        return torch.tensor(rows, dtype=torch.float32)

    def fit(self, archs: Sequence[dict], accuracies: Sequence[float], threads: int | None = 1) -> "AccuracyPredictor":
        """Train the MLP (mean squared error, Adam) on the pairs; returns self. `threads`: CPU
        threads while training (1: a small MLP is fastest on one thread, see `num_threads`)."""
        archs = list(archs)
        y = torch.tensor(_numbers("accuracies", accuracies), dtype=torch.float32)
        if len(archs) != len(y):
            raise ValueError(f"got {len(archs)} architectures but {len(y)} accuracies")
        if len(archs) < 2:
            raise ValueError(f"need at least 2 (architecture, accuracy) pairs to fit, got {len(archs)}")
        x = self.encode(archs)
        self.mean, self.std = float(y.mean()), float(y.std()) or 1.0
        target = (y - self.mean) / self.std
        c = self.config
        opt = torch.optim.Adam(self.mlp.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        gen = torch.Generator().manual_seed(c.seed)
        batch = len(archs) if c.batch_size is None else min(c.batch_size, len(archs))
        self.losses = []
        self.mlp.train()
        with num_threads(threads):
            self._train(x, target, opt, gen, batch)
        self.mlp.eval()
        self.fitted = True
        return self

    def _train(self, x: torch.Tensor, target: torch.Tensor, opt, gen: torch.Generator, batch: int) -> None:
        n = len(target)
        for _ in range(self.config.epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, batch):
                index = order[start:start + batch]
                loss = nn.functional.mse_loss(self.mlp(x[index]).squeeze(1), target[index])  # (B,) vs (B,)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(index)
            self.losses.append(total / n)

    @torch.no_grad()
    def predict(self, archs: dict | Sequence[dict]) -> float | list[float]:
        """Predicted accuracy of one architecture (a float) or of a list of them (a list)."""
        if not self.fitted:
            raise RuntimeError("the predictor is not trained yet: call fit(archs, accuracies) first")
        single = isinstance(archs, dict)
        with num_threads(1):
            out = self.mlp(self.encode([archs] if single else list(archs))).squeeze(1) * self.std + self.mean
        values = out.tolist()
        return values[0] if single else values

    def __call__(self, arch: dict) -> float:
        return self.predict(arch)

    def kendall_tau(self, archs: Sequence[dict], accuracies: Sequence[float]) -> float:
        """Kendall's tau between the predictions for `archs` and their true `accuracies`."""
        return kendall_tau(self.predict(list(archs)), accuracies)


def split_pairs(archs: Sequence[dict], accuracies: Sequence[float], held_out: float, seed: int):
    """A seeded random split of (arch, accuracy) pairs: (train archs, train accs, held-out archs,
    held-out accs), `held_out` the fraction kept aside to measure the predictor's Kendall tau."""
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction strictly between 0 and 1, got {held_out}")
    archs, accuracies = list(archs), list(accuracies)
    if len(archs) != len(accuracies):
        raise ValueError(f"got {len(archs)} architectures but {len(accuracies)} accuracies")
    order = list(range(len(archs)))
    random.Random(seed).shuffle(order)
    k = max(1, round(held_out * len(order)))
    test, train = order[:k], order[k:]
    return ([archs[i] for i in train], [accuracies[i] for i in train],
            [archs[i] for i in test], [accuracies[i] for i in test])


# --------------------------------------------------------------------------------------------
# Latency predictor: a lookup table over the layers of a network-level architecture
# --------------------------------------------------------------------------------------------


def layer_name(row: tuple, num_classes: int) -> str:
    """The table name of one row of `NetworkSpace.layout(arch)` (the input shape is added by
    `op_key`): "stem3x3_1_16_s1", "mbconv_16_24_t4_k5_s2", "last1x1_96_1280", "head_32_10"."""
    kind = row[0]
    if kind == "stem":
        _, c_in, c_out, s = row
        return f"stem3x3_{c_in}_{c_out}_s{s}"
    if kind == "block":
        _, c_in, c_out, t, k, s = row
        return f"mbconv_{c_in}_{c_out}_t{t:g}_k{k}_s{s}"
    if kind == "last":
        return f"last1x1_{row[1]}_{row[2]}"
    if kind == "head":
        return f"head_{row[1]}_{num_classes}"
    raise ValueError(f"unknown layout row {row!r}")


def _row_keys(space, arch: dict, batch: int) -> list[tuple[str, tuple[int, ...], tuple]]:
    """(name, input shape, row) of each layer of `arch`, shapes followed analytically."""
    arch = space.validate(arch)
    h = arch["resolution"]
    out = []
    for row in space.layout(arch):
        kind = row[0]
        c_in = row[1]
        out.append((layer_name(row, space.config.num_classes), (batch, c_in, h, h), row))
        if kind == "stem":
            h = conv_output_size(h, 3, row[3], 1)
        elif kind == "block":
            h = conv_output_size(h, row[4], row[5], row[4] // 2)
    return out


def network_layers(space, arch: dict, batch: int = 1) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, input shape) of every layer of `space.build(arch)`, the granularity of the
    latency table (a whole inverted residual block is one entry, as in ProxylessNAS's tables)."""
    rows = _row_keys(space, arch, batch)
    model = space.build(arch)
    return [(name, module, shape) for (name, shape, _), module in zip(rows, model, strict=True)]


class LatencyPredictor:
    """Latency of an architecture of a `NetworkSpace` as the sum of its layers' entries in a
    lookup table (ProxylessNAS Eq. 4: E[LAT] = Σ_i E[latency of layer i]).

        table = network_latency_table(space, device="cpu", threads=1)   # once, on the device
        latency = LatencyPredictor(table, space)
        latency(arch)            # ms, no model built
        latency.check(arch)      # against the end-to-end measurement of space.build(arch)
    """

    def __init__(self, table: LatencyTable, space, batch: int = 1):
        if not isinstance(table, dict):
            raise TypeError(f"table must be a dict {{op key: ms}}, got {type(table).__name__}")
        if not hasattr(space, "layout"):
            raise TypeError(f"space must be a NetworkSpace (with layout(arch)), got {type(space).__name__}")
        self.table, self.space, self.batch = table, space, batch

    def keys(self, arch: dict) -> list[str]:
        """The table keys of the layers of `arch`, in order."""
        return [op_key(name, shape) for name, shape, _ in _row_keys(self.space, arch, self.batch)]

    def __call__(self, arch: dict) -> float:
        """Predicted latency in ms: the sum of the table entries of the architecture's layers."""
        return table_latency(self.table, self.keys(arch))

    def check(self, arch: dict, device: str | torch.device = "cpu", warmup: int = 10, repeats: int = 50,
              threads: int | None = None) -> TableCheck:
        """The table's sum against the measured end-to-end latency of `space.build(arch)`."""
        layers = [(name, module) for name, module, _ in network_layers(self.space, arch, self.batch)]
        shape = (self.batch, *self.space.input_shape(arch)[1:])
        return check_latency_table(self.table, layers, shape, device, warmup, repeats, threads=threads)


def network_latency_table(
    space,
    archs: Sequence[dict] | None = None,
    device: str | torch.device = "cpu",
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    progress: bool = True,
) -> LatencyTable:
    """Measure every distinct layer of the space (or only of `archs`) on `device`: the lookup
    table of `LatencyPredictor`. Every layer of every architecture of a `NetworkSpace` is one of
    the rows made by the architectures whose blocks all share one (kernel, expand) pair at the
    deepest setting (a block's inputs depend on its stage, position and width, not on its
    neighbours' choices), so the table holds |resolutions|·|widths|·(a few rows per stage per
    kernel and expand ratio) entries, not one per architecture. Batch 1: edge inference."""
    archs = _covering_archs(space) if archs is None else list(archs)
    candidates, seen = [], set()
    for arch in archs:
        for name, module, shape in network_layers(space, arch, batch):
            key = op_key(name, shape)
            if key not in seen:
                seen.add(key)
                candidates.append((name, module, shape))
    return build_latency_table(candidates, device=device, warmup=warmup, repeats=repeats, threads=threads,
                               progress=progress)


def _covering_archs(space) -> list[dict]:
    """Architectures whose layers, together, are every distinct layer of the space."""
    c = space.config
    out = []
    for r in c.resolutions:
        for w in c.widths:
            for k in c.kernels:
                for t in c.expand_ratios:
                    arch = {"resolution": r, "width": w}
                    for name, options in space.decisions():
                        if name.endswith(".depth"):
                            arch[name] = max(options)
                        elif name.endswith(".kernel"):
                            arch[name] = k
                        elif name.endswith(".expand"):
                            arch[name] = t
                    out.append(arch)
    return out
