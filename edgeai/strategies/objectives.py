"""Fitness functions F(accuracy, efficiency) for hardware-aware search.

Lecture 11, "Evolutionary Search": the fitness combines accuracy and efficiency; given a resource
constraint, find the best candidate. Hard constraints are checked by the search driver
(`search(..., constraint=...)`); soft ones are folded into the score here.
"""

from __future__ import annotations

__all__ = ["mnasnet_reward"]


def mnasnet_reward(accuracy: float, latency: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """MnasNet's reward (Tan et al. 2019, Eq. 2):  ACC(m) · [LAT(m) / T]^w,
    with w = α if LAT(m) ≤ T else β.

    α = β = -0.07 (the paper's soft constraint): a model twice as slow as the target must be
    about 5% more accurate to score the same. α = 0, β = -1 gives a hard-ish constraint that
    only penalises models slower than T. `latency` may be any cost measure (ms, MACs) in the
    same unit as `target`.
    """
    if latency <= 0 or target <= 0:
        raise ValueError(f"latency and target must be positive, got latency={latency}, target={target}")
    w = alpha if latency <= target else beta
    return accuracy * (latency / target) ** w
