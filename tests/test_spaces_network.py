"""The network-level space (depth, width, kernel, expand ratio, resolution) and the edge-AI
constraints: analytic costs equal `profile` on built networks, sizes against enumeration, and
MCUNet's search-space analysis."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from edgeai.efficiency import profile
from edgeai.spaces.edge import (
    DEVICE_TIERS,
    ENERGY_45NM_PJ,
    KB,
    MB,
    Constraint,
    best_subspace,
    energy_per_inference,
    flops_distributions,
)
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig

TINY_CONFIG = NetworkSpaceConfig.digits(stages=((8, 1), (16, 2)), depths=(1, 2), kernels=(3, 5),
                                        expand_ratios=(2, 3), widths=(0.5, 1.0), resolutions=(8, 16))


@pytest.mark.parametrize("config, seed", [(NetworkSpaceConfig.digits(), s) for s in range(12)]
                         + [(NetworkSpaceConfig.mcunet(), s) for s in range(4)]
                         + [(NetworkSpaceConfig.mobilenet_v2(resolutions=(128, 160)), s) for s in range(2)])
def test_analytic_costs_equal_profile(config, seed):
    space = NetworkSpace(config)
    arch = space.sample(random.Random(seed))
    costs = space.costs(arch)
    measured = profile(space.build(arch), space.input_shape(arch))
    assert costs.params == measured.params
    assert costs.macs == measured.macs
    assert costs.peak_activations == measured.peak_activations


def test_the_lecture_dimensions_are_decisions():
    space = NetworkSpace()
    assert space.options("resolution") == (128, 160, 192, 224, 256)  # the lecture's list
    assert space.options("stage1.block0.kernel") == (3, 5, 7)
    assert space.options("stage3.depth") == (2, 3, 4)
    assert space.options("width") == (0.5, 0.75, 1.0)


def test_size_counts_distinct_networks_like_enumeration():
    space = NetworkSpace(TINY_CONFIG)
    # |r|·|w|·(Σ_d (|k|·|e|)^d)^stages = 2·2·(4 + 16)^2
    assert space.size() == 2 * 2 * (4 + 16) ** 2 == 1600
    grid = list(space.grid())
    assert len(grid) == len({space.key(a) for a in grid}) == 1600
    brute = {space.key(dict(zip(space.names, combo)))
             for combo in itertools.product(*(opts for _, opts in space.decisions()))}
    assert len(brute) == 1600  # every gene combination is one of the distinct networks


def test_inactive_genes_do_not_change_the_network():
    space = NetworkSpace(TINY_CONFIG)
    arch = space.sample(random.Random(0))
    arch["stage1.depth"] = 1
    other = dict(arch, **{"stage1.block1.kernel": 5 if arch["stage1.block1.kernel"] == 3 else 3})
    assert space.key(arch) == space.key(other)
    assert space.costs(arch) == space.costs(other)


def test_depth_width_kernel_resolution_change_costs_the_expected_way():
    space = NetworkSpace(NetworkSpaceConfig.digits())
    arch = space.sample(random.Random(1))
    base = space.costs(arch)
    bigger_r = space.costs(dict(arch, resolution=32 if arch["resolution"] != 32 else 16))
    assert (bigger_r.macs > base.macs) == (arch["resolution"] != 32)
    k = dict(arch, **{"stage1.block0.kernel": 7})
    k3 = dict(arch, **{"stage1.block0.kernel": 3})
    assert space.costs(k).macs > space.costs(k3).macs
    assert space.costs(k).params - space.costs(k3).params > 0
    deeper = dict(arch, **{"stage2.depth": 3})
    shallower = dict(arch, **{"stage2.depth": 1})
    assert space.costs(deeper).params > space.costs(shallower).params


def test_network_space_json_round_trip_and_operators():
    space = NetworkSpace(NetworkSpaceConfig.mcunet())
    rng = random.Random(2)
    for _ in range(50):
        a, b = space.sample(rng), space.sample(rng)
        assert space.validate(json.loads(json.dumps(space.to_json(a)))) == a
        assert space.mutate(a, rng, 0.2) in space and space.crossover(a, b, rng) in space
    with pytest.raises(ValueError, match=r"decision 'resolution' = 100 is not allowed"):
        space.validate(dict(a, resolution=100))
    with pytest.raises(ValueError, match="config.depths must not be empty"):
        NetworkSpace(NetworkSpaceConfig(depths=()))


# ------------------------------------------------------------------ edge constraints


def test_device_tiers_are_the_lecture_table():
    assert DEVICE_TIERS["tiny"].activation_memory == 320 * 1024 and DEVICE_TIERS["tiny"].storage == 1024**2
    assert DEVICE_TIERS["mobile"].activation_memory == 4 * 1024**3
    assert DEVICE_TIERS["mobile"].storage == 256 * 1024**3
    assert DEVICE_TIERS["cloud"].activation_memory == 80 * 1024**3


def test_constraint_names_every_violation():
    tiny = Constraint.for_tier("tiny")
    fits = {"params": 900_000, "macs": 50e6, "peak_activations": 300 * KB}
    assert tiny.satisfied(fits) and tiny.violations(fits) == []
    too_big = {"params": 2 * MB, "macs": 50e6, "peak_activations": 400 * KB}
    v = tiny.violations(too_big)
    assert len(v) == 2
    assert v[0].startswith("weights 2.00 MB at 8 bits > 1.00 MB")
    assert v[1].startswith("peak activation 400.0 KB at 8 bits > 320.0 KB")
    fp32 = Constraint.for_tier("tiny", weight_bits=32, activation_bits=32)
    assert not fp32.satisfied(fits)  # 4 bytes per value: 3.4 MB of weights
    limited = Constraint(max_macs=10e6, max_latency_ms=5)
    assert limited.violations({"params": 1, "macs": 20e6, "peak_activations": 1, "latency_ms": 7}) == [
        "MACs 20,000,000 > 10,000,000", "latency 7 ms > 5 ms"]
    with pytest.raises(ValueError, match="no 'latency_ms'"):
        limited.violations({"params": 1, "macs": 1, "peak_activations": 1})
    with pytest.raises(ValueError, match="unknown device tier 'watch'"):
        Constraint.for_tier("watch")


def test_energy_model_uses_horowitz_numbers():
    # 1000 int8 MACs (0.2 pJ mult + 0.1 pJ int32 accumulate), 100 int8 weights from DRAM
    # (a quarter of a 640 pJ 32-bit read each), 400 int8 activations written and read in SRAM
    e = energy_per_inference(macs=1000, params=100, activations=400, bits=8)
    assert e["compute"] == pytest.approx(1000 * 0.3 * 1e-9)
    assert e["weights"] == pytest.approx(100 * 640 / 4 * 1e-9)
    assert e["activations"] == pytest.approx(2 * 400 * 10 / 4 * 1e-9)
    assert e["total"] == pytest.approx(e["compute"] + e["weights"] + e["activations"])
    assert ENERGY_45NM_PJ["dram_32bit_read"] / ENERGY_45NM_PJ["int8_add"] > 20_000
    assert Constraint(max_energy_mj=e["total"] * 0.99).violations(
        {"params": 100, "macs": 1000, "peak_activations": 1, "activations": 400})[0].startswith("energy")
    with pytest.raises(ValueError, match="bits must be 8"):
        energy_per_inference(1, 1, 1, bits=16)


def test_mcunet_search_space_optimization():
    tiny = Constraint.for_tier("tiny")
    subspaces = [(0.3, 96), (0.5, 128), (0.7, 160)]
    make = lambda w, r: NetworkSpace(NetworkSpaceConfig.mcunet(widths=(w,), resolutions=(r,)))  # noqa: E731
    stats = flops_distributions(make, subspaces, tiny, n=200, seed=0)
    again = flops_distributions(make, subspaces, tiny, n=200, seed=0)
    assert [s.flops for s in stats] == [s.flops for s in again]  # seeded
    by_key = {s.key: s for s in stats}
    # the widest, highest-resolution sub-space rarely fits 320 KB / 1 MB; the narrowest always does
    assert by_key[(0.3, 96)].satisfying == 200
    assert by_key[(0.7, 160)].satisfying < 20
    # (the analytic costs equal `profile` on the built networks: test_analytic_costs_equal_profile)
    rejected_violate = 0
    for s in stats:  # every kept model really satisfies the constraint: replay the sampling
        space = make(*s.key)
        rng = random.Random(f"0/{s.key}")  # flops_distributions' stream for this sub-space (seed 0)
        kept = []
        for _ in range(200):
            costs = space.costs(space.sample(rng))
            # the tiny tier's limits at 8 bits, by hand: 1 byte per weight <= 1 MB of Flash,
            # 1 byte per activation at the peak <= 320 KB of SRAM
            fits = costs.params <= 1024 * 1024 and costs.peak_activations <= 320 * 1024
            assert fits == tiny.satisfied(costs)
            if fits:
                kept.append(2 * costs.macs)
            else:
                rejected_violate += 1
        assert s.flops == sorted(kept)  # exactly the satisfying models' FLOPs, sorted
    assert rejected_violate > 0  # the constraint rejected something (so the check above had teeth)
    x, y = by_key[(0.5, 128)].cdf()
    assert y[-1] == 1.0 and x == sorted(x)
    best = best_subspace(stats)
    assert best.mean_flops == max(s.mean_flops for s in stats if s.satisfying)
    assert best.key == (0.5, 128)  # more capacity than (0.3, 96) and enough models that fit
    with pytest.raises(ValueError, match="no sub-space has satisfying models"):
        best_subspace(flops_distributions(make, [(0.7, 176)], Constraint(max_macs=1), n=5))


def test_sampled_tiny_models_really_fit_when_profiled():
    tiny = Constraint.for_tier("tiny")
    space = NetworkSpace(NetworkSpaceConfig.mcunet(widths=(0.4,), resolutions=(112,)))
    rng = random.Random(3)
    checked = 0
    while checked < 2:
        arch = space.sample(rng)
        costs = space.costs(arch)
        if tiny.satisfied(costs):
            p = profile(space.build(arch), space.input_shape(arch))
            assert p.peak_memory(8) <= 320 * KB and p.model_size(8) <= MB
            checked += 1


def test_subspace_searches_a_few_decisions_of_one_network():
    from edgeai.spaces import SubSpace

    space = NetworkSpace(NetworkSpaceConfig.digits())
    base = space.sample(random.Random(0))
    grid = SubSpace(space, base, {"width": (0.5, 1.0), "resolution": (8, 16)})
    assert grid.names == ["resolution", "width"] and grid.size() == 4
    for cell in grid.grid():
        full = grid.full(cell)
        assert {k: v for k, v in full.items() if k not in cell} == {k: v for k, v in base.items() if k not in cell}
        assert grid.costs(cell) == space.costs(full)
    with pytest.raises(ValueError, match=r"decision 'width' = 0.3 is not allowed"):
        SubSpace(space, base, {"width": (0.3,)})
    with pytest.raises(ValueError, match="unknown decision"):
        SubSpace(space, base, {"depth": (1,)})
