"""edgeai.estimation.predictors: Kendall's tau against hand-computed cases and SciPy, the
accuracy predictor on a toy target whose ranking is known, and the lookup-table latency
predictor against an oracle table (each layer's entry = its MACs, so the sum must equal the
space's analytic MACs) and against a table measured on this machine."""

from __future__ import annotations

import math
import random

import pytest
import torch

from edgeai.efficiency import profile
from edgeai.estimation.latency import TableCheck, op_key
from edgeai.estimation.predictors import (
    AccuracyPredictor,
    LatencyPredictor,
    PredictorConfig,
    kendall_tau,
    layer_name,
    network_latency_table,
    network_layers,
    split_pairs,
)
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread (conftest.py)


TINY = NetworkSpaceConfig.digits(stages=((8, 1), (16, 2)), depths=(1, 2), kernels=(3, 5), expand_ratios=(2, 3),
                                 widths=(0.5, 1.0), resolutions=(8, 16))


# --------------------------------------------------------------------------------------------
# Kendall's tau
# --------------------------------------------------------------------------------------------


def test_kendall_tau_by_hand():
    # x in order; y = 3 1 2 5 4: of the 10 pairs, (1,2) (1,3) (4,5) are discordant, 7 concordant
    assert kendall_tau([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx((7 - 3) / 10)
    # ties: x = 1 1 2 3, y = 1 2 2 3: pair (1,2) tied in x only, (2,3) tied in y only, 4 concordant
    # tau_b = (4 - 0) / sqrt((4 + 0 + 1)(4 + 0 + 1)) = 0.8
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    assert kendall_tau([0.9, 0.8, 0.7], [3, 2, 1]) == 1.0
    assert kendall_tau([0.9, 0.8, 0.7], [1, 2, 3]) == -1.0
    assert kendall_tau(torch.tensor([1.0, 2.0]), [5, 7]) == 1.0
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))  # no order in x


def test_kendall_tau_equals_scipy_with_and_without_ties():
    stats = pytest.importorskip("scipy.stats")  # scipy comes with scikit-learn
    rng = random.Random(0)
    for n in (2, 3, 7, 25, 60):
        for levels in (3, 10, 1000):  # many ties .. almost none
            x = [rng.randrange(levels) / levels for _ in range(n)]
            y = [rng.randrange(levels) for _ in range(n)]
            expected = stats.kendalltau(x, y)[0]
            got = kendall_tau(x, y)
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_refuses_bad_input():
    with pytest.raises(ValueError, match="equally long"):
        kendall_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        kendall_tau([1], [1])
    with pytest.raises(TypeError, match="numbers"):
        kendall_tau(["a", "b"], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau([1, float("nan")], [1, 2])


# --------------------------------------------------------------------------------------------
# Accuracy predictor
# --------------------------------------------------------------------------------------------


def _toy_accuracy(space, arch) -> float:
    """A known target: bigger networks are better, saturating (like accuracy against MACs)."""
    return 1.0 - 0.5 * math.exp(-space.costs(arch).macs / 2e5)


def test_accuracy_predictor_ranks_held_out_architectures():
    space = NetworkSpace(TINY)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(120)]
    accs = [_toy_accuracy(space, a) for a in archs]
    train_a, train_y, test_a, test_y = split_pairs(archs, accs, held_out=0.25, seed=0)
    assert len(test_a) == 30 and len(train_a) == 90
    predictor = AccuracyPredictor(space, PredictorConfig(epochs=300, seed=0)).fit(train_a, train_y)
    assert predictor.losses[-1] < 0.1 * predictor.losses[0]
    assert predictor.kendall_tau(test_a, test_y) > 0.7  # 0.92 when written; a constant predictor gets nan
    assert isinstance(predictor(test_a[0]), float) and len(predictor.predict(test_a)) == 30
    # the units come back: predictions are accuracies, not standardised values
    assert abs(sum(predictor.predict(test_a)) / 30 - sum(test_y) / 30) < 0.05
    again = AccuracyPredictor(space, PredictorConfig(epochs=300, seed=0)).fit(train_a, train_y)
    assert again.predict(test_a) == predictor.predict(test_a)  # seeded


def test_accuracy_predictor_ignores_inactive_genes():
    space = NetworkSpace(TINY)
    arch = dict(space.sample(random.Random(1)), **{"stage1.depth": 1})
    other = dict(arch, **{"stage1.block1.kernel": 5 if arch["stage1.block1.kernel"] == 3 else 3})
    predictor = AccuracyPredictor(space, PredictorConfig(epochs=5)).fit([arch, space.sample(random.Random(2))], [0.5, 0.9])
    assert predictor.predict(arch) == predictor.predict(other)


def test_accuracy_predictor_refuses_bad_input():
    space = NetworkSpace(TINY)
    arch = space.sample(random.Random(0))
    with pytest.raises(RuntimeError, match="fit"):
        AccuracyPredictor(space).predict(arch)
    with pytest.raises(ValueError, match="accuracies"):
        AccuracyPredictor(space).fit([arch, arch], [0.5])
    with pytest.raises(ValueError, match="hidden"):
        PredictorConfig(hidden=())
    with pytest.raises(ValueError, match="epochs"):
        PredictorConfig(epochs=0)
    with pytest.raises(TypeError, match="encode"):
        AccuracyPredictor(object())
    with pytest.raises(ValueError, match="held_out"):
        split_pairs([arch], [0.5], held_out=1.5, seed=0)


# --------------------------------------------------------------------------------------------
# Latency predictor: lookup table
# --------------------------------------------------------------------------------------------


def test_layer_names_are_readable():
    assert layer_name(("stem", 1, 16, 1), 10) == "stem3x3_1_16_s1"
    assert layer_name(("block", 16, 24, 4, 5, 2), 10) == "mbconv_16_24_t4_k5_s2"
    assert layer_name(("last", 96, 1280), 1000) == "last1x1_96_1280"
    assert layer_name(("head", 32), 10) == "head_32_10"
    with pytest.raises(ValueError, match="row"):
        layer_name(("pool", 3), 10)


@pytest.mark.parametrize("config", [NetworkSpaceConfig.digits(), NetworkSpaceConfig.mcunet(resolutions=(96, 112))])
def test_table_keys_follow_the_layers_shapes(config):
    """An oracle table whose entry for each layer is that layer's MACs: the predictor's sum must
    equal the space's analytic MACs, so every key names the right layer at the right input."""
    space = NetworkSpace(config)
    rng = random.Random(0)
    for _ in range(3):
        arch = space.sample(rng)
        layers = network_layers(space, arch)
        keys = [op_key(name, shape) for name, _, shape in layers]
        table = {key: float(profile(module, shape).macs) for key, (_, module, shape) in zip(keys, layers)}
        predictor = LatencyPredictor(table, space)
        assert predictor.keys(arch) == keys  # a layer repeated in the network is summed twice
        assert predictor(arch) == space.costs(arch).macs


def test_latency_table_of_a_space_covers_every_architecture():
    space = NetworkSpace(TINY)
    table = network_latency_table(space, warmup=1, repeats=2, threads=1, progress=False)
    predictor = LatencyPredictor(table, space)
    # every distinct layer of the space once: the oracle is brute force over all 1600 networks
    # (60 layers: per (resolution, width) a stem, the first block, a head and 3 blocks per
    # (kernel, expand) pair, less 4 that two settings share: at width 0.5 and 16 px, stage 2's
    # second block is 8 -> 8 channels on 8 x 8, like stage 1's blocks at width 1 and 8 px)
    assert set(table) == {key for arch in space.grid() for key in predictor.keys(arch)}
    assert len(table) == 2 * 2 * (3 + 2 * 2 * 3) - 4
    rng = random.Random(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert predictor(arch) == pytest.approx(sum(table[k] for k in predictor.keys(arch)))
        assert predictor(arch) > 0
    arch = space.sample(rng)
    check = predictor.check(arch, warmup=1, repeats=3, threads=1)
    assert isinstance(check, TableCheck) and check.measured.median_ms > 0
    assert list(check.keys) == predictor.keys(arch)  # shapes seen by a real forward pass = the analytic ones
    assert check.table_ms == predictor(arch)


def test_latency_predictor_refuses_bad_input():
    space = NetworkSpace(TINY)
    with pytest.raises(TypeError, match="dict"):
        LatencyPredictor([1, 2], space)
    with pytest.raises(TypeError, match="layout"):
        LatencyPredictor({}, object())
    with pytest.raises(KeyError, match="not in the latency table"):
        LatencyPredictor({}, space)(space.sample(random.Random(0)))
