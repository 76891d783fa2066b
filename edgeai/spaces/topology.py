"""The network-level topology search space of Auto-DeepLab (Liu et al. 2019; Lecture 11,
"Network-level Search Space: Topology connection").

Two principles define the space:
  - the spatial resolution of the next layer is either twice as large, twice as small, or the same;
  - the smallest spatial resolution is downsampled by 32.
So after a stem that downsamples by 4, each of the L layers sits at a downsampling rate
s ∈ {4, 8, 16, 32} and moves at most one step from the previous layer's rate. An architecture is a
path through that trellis: {"layer1": 4, "layer2": 8, ...}. Such a space includes the usual
designs (a ResNet/VGG-like staircase down to 32, an encoder-decoder going down and back up).

Not every combination of per-layer rates is a path, so the space counts its valid paths exactly
with dynamic programming, and samples uniformly among them by walking the same table.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from edgeai.spaces.base import CategoricalSpace, make_rng

__all__ = ["TopologySpace", "count_paths", "TopologyConfig", "TopologyNetwork"]

RATES = (4, 8, 16, 32)


def count_paths(num_layers: int, rates: tuple[int, ...] = RATES, start: int = 4) -> int:
    """Number of valid paths of `num_layers` layers starting after the stem at rate `start`.

    paths[l][s] = number of ways to be at rate s after l layers
               = Σ over s' ∈ {s/2, s, 2s} ∩ rates of paths[l-1][s'];   paths[0] = 1 at `start`
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    return sum(_ways_to_end(len(rates), rates.index(start), num_layers))


def _ways_to_end(n_rates: int, start_index: int, num_layers: int) -> list[int]:
    """paths[L][s] for every rate index s (see `count_paths`)."""
    ways = [1 if i == start_index else 0 for i in range(n_rates)]
    for _ in range(num_layers):
        ways = [sum(ways[j] for j in (i - 1, i, i + 1) if 0 <= j < n_rates) for i in range(n_rates)]
    return ways


class TopologySpace(CategoricalSpace):
    """Paths of `num_layers` layers through the rates 4, 8, 16, 32 (Auto-DeepLab: L = 12)."""

    def __init__(self, num_layers: int = 12, rates: tuple[int, ...] = RATES, start: int = 4):
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        rates = tuple(rates)
        if list(rates) != sorted(rates) or any(b != 2 * a for a, b in zip(rates, rates[1:])):
            raise ValueError(f"rates must double from one to the next, e.g. {RATES}; got {rates}")
        if start not in rates:
            raise ValueError(f"start must be one of the rates {rates}, got {start}")
        self.num_layers, self.rates, self.start = num_layers, rates, start
        super().__init__([(f"layer{l}", rates) for l in range(1, num_layers + 1)])

    def path(self, arch: dict) -> list[int]:
        """The downsampling rate after the stem and after each layer."""
        return [self.start] + [arch[f"layer{l}"] for l in range(1, self.num_layers + 1)]

    def explain_infeasible(self, arch: dict) -> str | None:
        path = self.path(arch)
        for l, (a, b) in enumerate(zip(path, path[1:]), start=1):
            if b not in (a // 2, a, 2 * a):
                return (f"layer{l} = {b} does not follow layer{l - 1} = {a}: the resolution may only "
                        f"halve, double or stay (allowed: {sorted({a // 2, a, 2 * a} & set(self.rates))})")
        return None

    def size(self) -> int:
        """Valid paths, counted by dynamic programming (see `count_paths`)."""
        return count_paths(self.num_layers, self.rates, self.start)

    def sample(self, rng: random.Random) -> dict:
        """A path drawn uniformly among all valid paths: at each layer, the next rate is chosen
        with probability proportional to the number of valid completions through it."""
        rng = make_rng(rng)
        n = len(self.rates)
        arch, i = {}, self.rates.index(self.start)
        for l in range(1, self.num_layers + 1):
            remaining = self.num_layers - l
            choices = [j for j in (i - 1, i, i + 1) if 0 <= j < n]
            weights = [sum(_ways_to_end(n, j, remaining)) for j in choices]
            i = rng.choices(choices, weights=weights)[0]
            arch[f"layer{l}"] = self.rates[i]
        return arch

    def build(self, arch: dict, config: "TopologyConfig | None" = None) -> "TopologyNetwork":
        return TopologyNetwork(self.path(self.validate(arch)), config or TopologyConfig())


@dataclass(frozen=True)
class TopologyConfig:
    """A simple classifier that follows a topology path."""

    base_channels: int = 8  # channels at rate 4; a layer at rate s has base_channels · s / 4 (Auto-DeepLab's B·s/4)
    in_channels: int = 1
    num_classes: int = 10


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class _Layer(nn.Module):
    """Move from rate a to rate b: a stride-2 conv (down), a conv (same), or 2x upsampling and a conv (up)."""

    def __init__(self, c_in: int, c_out: int, move: str):
        super().__init__()
        self.up = move == "up"
        self.conv = _conv_bn_relu(c_in, c_out, 2 if move == "down" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (N, C, 2H, 2W)
        return self.conv(x)


class TopologyNetwork(nn.Module):
    """Stem (downsample by 4) → one layer per step of the path → global pool → classifier."""

    def __init__(self, path: list[int], config: TopologyConfig):
        super().__init__()
        self.path = path
        width = lambda s: config.base_channels * s // 4  # noqa: E731
        self.stem = nn.Sequential(_conv_bn_relu(config.in_channels, width(4) // 2, 2), _conv_bn_relu(width(4) // 2, width(4), 2))
        moves = ["down" if b > a else "up" if b < a else "same" for a, b in zip(path, path[1:])]
        self.layers = nn.Sequential(*[_Layer(width(a), width(b), m) for a, b, m in zip(path, path[1:], moves)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width(path[-1]), config.num_classes)
        self.max_rate = max(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.max_rate or x.shape[-2] % self.max_rate:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be divisible by the path's largest "
                             f"downsampling rate {self.max_rate}")
        x = self.layers(self.stem(x))  # (N, C_s, H/s, W/s) at the path's last rate s
        return self.classifier(self.pool(x).flatten(1))
