"""Random search (Bergstra & Bengio, 2012).

Lecture 11, "Search Strategy: Random Search": random search often finds better models faster than
grid search, especially when only a subset of the decisions matters: a grid of N points tries only
N^(1/d) values of each decision, N random points try up to N values of each.
"""

from __future__ import annotations

import math

from edgeai.strategies.base import Strategy

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Ask: an architecture drawn uniformly from the space. Tell: nothing to learn."""

    def ask(self) -> dict:
        return self.space.sample(self.rng)

    def ready(self, pending: int) -> float:
        return math.inf  # the draws never depend on the scores: ask as many as there are workers
