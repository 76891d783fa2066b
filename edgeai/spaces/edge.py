"""Designing the search space for edge AI (Lecture 11, "Design the Search Space for Edge AI").

Device tiers (the lecture's table):

                         Cloud AI    Mobile AI   Tiny AI
    Memory (activation)  80 GB       4 GB        320 KB
    Storage (weights)    ~TB/PB      256 GB      1 MB

Mobile phones add latency and energy constraints; microcontrollers add memory constraints. A
`Constraint` checks an architecture's costs (params, MACs, peak activation memory, and where
known latency and energy) against such limits, and says which limits are broken.

MCUNet's search-space optimization (Lin et al. 2020, Section 3.1): larger FLOPs means larger
model capacity and more likely higher accuracy, so among candidate sub-spaces (a width multiplier
and an input resolution each), sample n architectures from each, keep those that satisfy the
constraint, and compare their FLOPs distributions (CDFs): the sub-space whose satisfying models
have the most FLOPs is the one to search.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Mapping

__all__ = [
    "KB",
    "MB",
    "GB",
    "DeviceTier",
    "DEVICE_TIERS",
    "Constraint",
    "ENERGY_45NM_PJ",
    "energy_per_inference",
    "SubspaceStats",
    "flops_distributions",
    "best_subspace",
]

KB, MB, GB, TB = 1024, 1024**2, 1024**3, 1024**4  # memory sizes in the binary sense (320 KB SRAM = 327,680 B)


@dataclass(frozen=True)
class DeviceTier:
    """A class of devices from the lecture's table."""

    name: str
    activation_memory: int  # bytes for activations (SRAM / DRAM / HBM)
    storage: int  # bytes for weights (Flash / disk)
    example: str = ""


DEVICE_TIERS: dict[str, DeviceTier] = {
    "cloud": DeviceTier("cloud", 80 * GB, 1 * TB, "NVIDIA A100/H100 (80 GB HBM), TB-scale storage"),
    "mobile": DeviceTier("mobile", 4 * GB, 256 * GB, "a smartphone: 4 GB DRAM, 256 GB storage"),
    "tiny": DeviceTier("tiny", 320 * KB, 1 * MB, "STM32F746 microcontroller: 320 KB SRAM, 1 MB Flash"),
}


# Energy per operation at 45 nm, 0.9 V, in picojoules (Horowitz, "Computing's energy problem",
# ISSCC 2014, Fig. 1.1.9; the table Han et al. and the efficient-ML lectures reuse).
ENERGY_45NM_PJ = {
    "int8_add": 0.03,
    "int8_mult": 0.2,
    "int32_add": 0.1,
    "int32_mult": 3.1,
    "fp16_add": 0.4,
    "fp16_mult": 1.1,
    "fp32_add": 0.9,
    "fp32_mult": 3.7,
    "sram_32bit_read_8kb": 5.0,  # 32-bit read from an 8 KB SRAM
    "sram_32bit_read_32kb": 10.0,
    "sram_32bit_read_1mb": 20.0,
    "dram_32bit_read": 640.0,
}


def energy_per_inference(macs: int, params: int, activations: int, bits: int = 8) -> dict[str, float]:
    """A simple energy model of one inference, in millijoules, from Horowitz's 45 nm table.

        compute  = MACs · (E_mult + E_add)                    at int8 (bits=8) or fp32 (bits=32)
        weights  = params · bits/32 · E_DRAM(32-bit read)     every weight read once from off-chip memory
        activations = 2 · activations · bits/32 · E_SRAM(32-bit read, 32 KB)   each written and read once on chip

    It ignores data reuse in caches, leakage and the rest of the system: a first-order model that
    shows why memory traffic, not arithmetic, dominates (a DRAM read costs ~3000x an int8 add).
    """
    if bits not in (8, 32):
        raise ValueError(f"bits must be 8 (int8) or 32 (fp32), got {bits}")
    for name, value in (("macs", macs), ("params", params), ("activations", activations)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    e = ENERGY_45NM_PJ
    mac_pj = e["int8_mult"] + e["int32_add"] if bits == 8 else e["fp32_mult"] + e["fp32_add"]  # int8 MACs accumulate in int32
    compute = macs * mac_pj
    weights = params * bits / 32 * e["dram_32bit_read"]
    acts = 2 * activations * bits / 32 * e["sram_32bit_read_32kb"]
    pj = {"compute": compute, "weights": weights, "activations": acts}
    out = {k: v * 1e-9 for k, v in pj.items()}  # pJ -> mJ
    out["total"] = sum(out.values())
    return out


def _get(costs, name):
    if isinstance(costs, Mapping):
        return costs.get(name)
    return getattr(costs, name, None)


@dataclass(frozen=True)
class Constraint:
    """Limits an architecture must satisfy; None means no limit.

    `costs` given to `violations`/`satisfied` is a dict (or object) with `params`, `macs`,
    `peak_activations` (elements), and optionally `activations`, `latency_ms`, `energy_mj`.
    """

    max_macs: float | None = None  # multiply-accumulates per inference
    max_storage: float | None = None  # bytes of weights at `weight_bits`
    max_peak_memory: float | None = None  # bytes of peak activation memory at `activation_bits`
    max_latency_ms: float | None = None
    max_energy_mj: float | None = None  # per inference, from `energy_per_inference` unless given
    weight_bits: int = 8
    activation_bits: int = 8

    @classmethod
    def for_tier(cls, tier: str | DeviceTier, weight_bits: int = 8, activation_bits: int = 8, **limits) -> "Constraint":
        """The memory limits of a device tier ("cloud", "mobile", "tiny"), plus any other limits."""
        if isinstance(tier, str):
            if tier not in DEVICE_TIERS:
                raise ValueError(f"unknown device tier {tier!r}; tiers: {list(DEVICE_TIERS)}")
            tier = DEVICE_TIERS[tier]
        return cls(max_storage=tier.storage, max_peak_memory=tier.activation_memory,
                   weight_bits=weight_bits, activation_bits=activation_bits, **limits)

    def violations(self, costs) -> list[str]:
        """What is over its limit, in words (empty: the architecture fits)."""
        out = []
        params, macs, peak = _get(costs, "params"), _get(costs, "macs"), _get(costs, "peak_activations")
        if self.max_macs is not None and macs > self.max_macs:
            out.append(f"MACs {macs:,.0f} > {self.max_macs:,.0f}")
        if self.max_storage is not None:
            storage = params * self.weight_bits / 8
            if storage > self.max_storage:
                out.append(f"weights {_kb(storage)} at {self.weight_bits} bits > {_kb(self.max_storage)}")
        if self.max_peak_memory is not None:
            memory = peak * self.activation_bits / 8
            if memory > self.max_peak_memory:
                out.append(f"peak activation {_kb(memory)} at {self.activation_bits} bits > {_kb(self.max_peak_memory)}")
        if self.max_latency_ms is not None:
            latency = _get(costs, "latency_ms")
            if latency is None:
                raise ValueError("the constraint limits latency but the costs have no 'latency_ms'")
            if latency > self.max_latency_ms:
                out.append(f"latency {latency:.3g} ms > {self.max_latency_ms:.3g} ms")
        if self.max_energy_mj is not None:
            energy = _get(costs, "energy_mj")
            if energy is None:
                acts = _get(costs, "activations")
                if acts is None:
                    raise ValueError("the constraint limits energy but the costs have neither 'energy_mj' nor 'activations'")
                energy = energy_per_inference(macs, params, acts, bits=self.weight_bits)["total"]
            if energy > self.max_energy_mj:
                out.append(f"energy {energy:.3g} mJ > {self.max_energy_mj:.3g} mJ")
        return out

    def satisfied(self, costs) -> bool:
        return not self.violations(costs)


def _kb(n_bytes: float) -> str:
    if n_bytes >= GB:
        return f"{n_bytes / GB:,.1f} GB"
    if n_bytes >= MB:
        return f"{n_bytes / MB:,.2f} MB"
    return f"{n_bytes / KB:,.1f} KB"


@dataclass
class SubspaceStats:
    """FLOPs of the satisfying models sampled from one sub-space."""

    key: tuple  # e.g. (width multiplier, resolution)
    sampled: int
    flops: list[float] = field(default_factory=list)  # of the models that satisfy the constraint, sorted

    @property
    def satisfying(self) -> int:
        return len(self.flops)

    @property
    def mean_flops(self) -> float:
        return sum(self.flops) / len(self.flops) if self.flops else 0.0

    def cdf(self) -> tuple[list[float], list[float]]:
        """x: FLOPs, y: fraction of satisfying models with at most that many FLOPs."""
        n = len(self.flops)
        return list(self.flops), [(i + 1) / n for i in range(n)]


def flops_distributions(
    make_space: Callable[..., object],
    subspaces: list[tuple],
    constraint: Constraint,
    n: int = 1000,
    seed: int = 0,
) -> list[SubspaceStats]:
    """MCUNet's analysis: for each sub-space key (e.g. (width, resolution)), `make_space(*key)`
    must return a space with `sample(rng)` and analytic `costs(arch)`; sample `n` architectures,
    keep those the constraint accepts, and collect their FLOPs (2 · MACs)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    out = []
    for key in subspaces:
        space = make_space(*key)
        rng = random.Random(f"{seed}/{key}")  # one stream per sub-space, all from the one seed
        flops = []
        for _ in range(n):
            costs = space.costs(space.sample(rng))
            if constraint.satisfied(costs):
                flops.append(2 * _get(costs, "macs"))
        out.append(SubspaceStats(tuple(key), n, sorted(flops)))
    return out


def best_subspace(stats: list[SubspaceStats], min_satisfying: float = 0.0) -> SubspaceStats:
    """The sub-space whose satisfying models have the largest mean FLOPs (MCUNet's choice),
    among those where at least `min_satisfying` of the samples satisfy the constraint."""
    eligible = [s for s in stats if s.satisfying and s.satisfying / s.sampled >= min_satisfying]
    if not eligible:
        raise ValueError("no sub-space has satisfying models; relax the constraint or sample more")
    return max(eligible, key=lambda s: s.mean_flops)

