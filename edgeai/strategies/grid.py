"""Grid search, and EfficientNet's compound scaling found by a grid search.

Lecture 11, "Search Strategy: Grid Search": the design space is the Cartesian product of
single-dimension design spaces (e.g. resolution in [1.0x, 1.1x, 1.2x] and width in
[1.0x, 1.1x, 1.2x]); each candidate is trained and the best one satisfying the constraint wins.

EfficientNet (Tan & Le, 2019) scales depth, width and resolution together:
    depth d = α^φ,  width w = β^φ,  resolution r = γ^φ,   subject to  α · β² · γ² ≈ 2,  α, β, γ ≥ 1
so that each step of φ doubles the FLOPs (FLOPs grow as d · w² · r²). α, β, γ come from a small grid
search at φ = 1; the paper found α = 1.2, β = 1.1, γ = 1.15.
"""

from __future__ import annotations

import math
import random

from edgeai.spaces.base import CategoricalSpace
from edgeai.strategies.base import SearchExhausted, Strategy

__all__ = [
    "GridSearch",
    "CompoundScalingSpace",
    "compound_scaling",
    "flops_multiplier",
    "LECTURE_WIDTH_RESOLUTION_ACCURACY",
    "EFFICIENTNET_COEFFICIENTS",
]


class GridSearch(Strategy):
    """Ask every architecture of `space.grid()` once, in order (or in a seeded random order
    with `shuffle=True`); then the search is exhausted."""

    def __init__(self, space, seed: int = 0, shuffle: bool = False):
        super().__init__(space, seed)
        self.shuffle = shuffle
        self._grid = None

    def ask(self) -> dict:
        if self._grid is None:
            if self.shuffle:
                if self.space.size() > 10**6:
                    raise ValueError(f"shuffle=True lists the whole grid first; {self.space.size():.3g} "
                                     "architectures are too many: restrict the space (e.g. SubSpace)")
                grid = list(self.space.grid())
                self.rng.shuffle(grid)
                self._grid = iter(grid)
            else:
                self._grid = iter(self.space.grid())  # lazily: a huge space is walked, never listed
        try:
            return next(self._grid)
        except StopIteration:
            raise SearchExhausted("every grid point has been asked") from None

    def ready(self, pending: int) -> float:
        return math.inf  # the grid's order never depends on the scores


# EfficientNet, Tan & Le 2019, Section 3.3 (step 1 of the compound scaling method)
EFFICIENTNET_COEFFICIENTS = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}


def flops_multiplier(alpha: float, beta: float, gamma: float, phi: float = 1.0) -> float:
    """FLOPs grow as depth · width² · resolution²:  (α · β² · γ²)^φ"""
    return (alpha * beta**2 * gamma**2) ** phi


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> dict:
    """Depth, width and resolution multipliers α^φ, β^φ, γ^φ for compound coefficient φ."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1 (EfficientNet scales up), got {value}")
    return {"depth": alpha**phi, "width": beta**phi, "resolution": gamma**phi,
            "flops": flops_multiplier(alpha, beta, gamma, phi)}


class CompoundScalingSpace(CategoricalSpace):
    """The grid EfficientNet searched at φ = 1: α, β, γ from `values`, keeping only the points
    with α · β² · γ² within `tolerance` of `target` (2: one step of φ doubles the FLOPs)."""

    def __init__(self, values=(1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4), target: float = 2.0,
                 tolerance: float = 0.1):
        if any(v < 1 for v in values):
            raise ValueError(f"values must all be >= 1, got {values}")
        super().__init__([("alpha", tuple(values)), ("beta", tuple(values)), ("gamma", tuple(values))])
        self.target, self.tolerance = target, tolerance

    def explain_infeasible(self, arch):
        m = flops_multiplier(arch["alpha"], arch["beta"], arch["gamma"])
        if abs(m - self.target) > self.tolerance:
            return (f"alpha*beta^2*gamma^2 = {m:.3f} is not within {self.tolerance} of {self.target} "
                    f"(alpha={arch['alpha']}, beta={arch['beta']}, gamma={arch['gamma']})")
        return None

    def size(self) -> int:
        return sum(1 for _ in self.grid())

    def sample(self, rng: random.Random) -> dict:
        from edgeai.spaces.base import make_rng

        return make_rng(rng).choice(list(self.grid()))


# Lecture 11, "Search Strategy: Grid Search": accuracy of candidate networks on a
# width x resolution grid (rows: width multiplier, columns: resolution multiplier).
LECTURE_WIDTH_RESOLUTION_ACCURACY = {
    (1.0, 1.0): 0.500, (1.0, 1.1): 0.530, (1.0, 1.2): 0.549,
    (1.1, 1.0): 0.510, (1.1, 1.1): 0.535, (1.1, 1.2): 0.554,
    (1.2, 1.0): 0.520, (1.2, 1.1): 0.541, (1.2, 1.2): 0.562,
}
