"""The NASNet cell space and the Auto-DeepLab topology space: sizes against brute-force
enumeration and the papers' numbers, sampling validity, operators staying inside, JSON round
trips, and built networks that run."""

from __future__ import annotations

import collections
import itertools
import json
import random

import pytest
import torch

from edgeai.spaces.nasnet import NASNetCellSpace, NASNetConfig, nasnet_space_size
from edgeai.spaces.ops import NASNET_OPS
from edgeai.spaces.topology import TopologySpace, count_paths

# ------------------------------------------------------------------ NASNet


def test_lecture_size_of_the_nasnet_space():
    # Lecture 11: (2·2·M·M·N)^B with M = 13, N = 2, B = 5: "4.5 x 10^15 candidates"
    assert nasnet_space_size(13, 2, 5) == (2 * 2 * 13 * 13 * 2) ** 5 == 4_517_347_060_908_032
    assert f"{nasnet_space_size():.1e}" == "4.5e+15"
    space = NASNetCellSpace()
    assert space.size() == 4_517_347_060_908_032
    assert len(space) == 25  # 5 decisions per block (steps 1-5), 5 blocks


def test_exact_count_lets_blocks_use_earlier_blocks():
    # block b chooses among 2 + b hidden states: Π (2+b)² · M² · N
    assert nasnet_space_size(13, 2, 5, exact=True) == (2 * 3 * 4 * 5 * 6) ** 2 * 13**10 * 2**5
    assert NASNetCellSpace(exact=True).size() == nasnet_space_size(exact=True)
    assert NASNetCellSpace(separate_reduction=True).size() == nasnet_space_size() ** 2


@pytest.mark.parametrize("blocks, ops, combiners, exact", [
    (1, ("identity", "conv_3x3", "max_pool_3x3"), ("add", "concat"), False),
    (2, ("identity", "sep_conv_3x3"), ("add", "concat"), False),
    (2, ("identity", "conv_1x1", "avg_pool_3x3"), ("add",), True),
    (3, ("identity", "conv_3x3"), ("add",), True),
])
def test_size_equals_brute_force_enumeration(blocks, ops, combiners, exact):
    space = NASNetCellSpace(num_blocks=blocks, ops=ops, combiners=combiners, exact=exact)
    brute = sum(1 for _ in itertools.product(*(opts for _, opts in space.decisions())))
    assert space.size() == brute == len(list(space.grid()))
    assert space.size() == nasnet_space_size(len(ops), len(combiners), blocks, exact=exact)


def test_the_thirteen_operations_are_the_options():
    space = NASNetCellSpace()
    assert set(space.options("block0.op1")) == set(NASNET_OPS) and len(NASNET_OPS) == 13
    assert space.options("block0.combine") == ("add", "concat")
    assert space.options("block3.input1") == (0, 1)
    assert NASNetCellSpace(exact=True).options("block3.input1") == (0, 1, 2, 3, 4)


def test_sampled_cells_are_valid_json_and_build_runnable_networks():
    space = NASNetCellSpace(exact=True)
    rng = random.Random(0)
    config = NASNetConfig(channels=8, cells_per_stage=1, in_channels=1)
    for _ in range(4):
        arch = space.sample(rng)
        assert space.validate(json.loads(json.dumps(space.to_json(arch)))) == arch
        net = space.build(arch, config).eval()
        with torch.no_grad():
            assert net(torch.randn(2, 1, 16, 16)).shape == (2, 10)
        reductions = [c for c in net.cells if c.reduction]
        assert len(reductions) == 2 and len(net.cells) == 2 + 3 * config.cells_per_stage
    text = space.describe(arch)
    assert text.count("block") >= 5 and "h_i" in text


def test_reduction_cells_halve_the_resolution_and_concat_unused_states():
    space = NASNetCellSpace(num_blocks=2)
    arch = {"block0.input1": 0, "block0.input2": 1, "block0.op1": "identity", "block0.op2": "conv_3x3",
            "block0.combine": "add", "block1.input1": 1, "block1.input2": 1, "block1.op1": "max_pool_3x3",
            "block1.op2": "sep_conv_3x3", "block1.combine": "concat"}
    net = space.build(arch, NASNetConfig(channels=4, cells_per_stage=1, in_channels=1))
    shapes = []
    hooks = [c.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for c in net.cells]
    net.eval()(torch.randn(1, 1, 16, 16))
    for h in hooks:
        h.remove()
    # both blocks unused by the other → the cell outputs 2·C channels; C doubles per reduction
    assert shapes == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 16, 8, 8), (1, 32, 4, 4), (1, 32, 4, 4)]


def test_nasnet_bad_arguments():
    with pytest.raises(ValueError, match="unknown operation"):
        NASNetCellSpace(ops=("identity", "conv_9x9"))
    with pytest.raises(ValueError, match="num_blocks must be a positive integer"):
        NASNetCellSpace(num_blocks=0)
    with pytest.raises(ValueError, match="M must be a positive integer"):
        nasnet_space_size(0, 2, 5)
    arch = NASNetCellSpace().sample(random.Random(0))
    arch["block2.op1"] = "conv_9x9"
    with pytest.raises(ValueError, match=r"decision 'block2.op1' = 'conv_9x9' is not allowed"):
        NASNetCellSpace().validate(arch)


def test_mutation_and_crossover_stay_in_the_nasnet_space():
    space = NASNetCellSpace(exact=True)
    rng = random.Random(4)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        assert space.mutate(a, rng, 0.3) in space and space.crossover(a, b, rng) in space


# ------------------------------------------------------------------ Auto-DeepLab topology


def brute_force_paths(num_layers, rates=(4, 8, 16, 32), start=4):
    count = 0
    for combo in itertools.product(rates, repeat=num_layers):
        path = (start, *combo)
        count += all(b in (a // 2, a, 2 * a) for a, b in zip(path, path[1:]))
    return count


@pytest.mark.parametrize("layers", [1, 2, 3, 4, 6, 8])
def test_path_count_equals_brute_force(layers):
    assert count_paths(layers) == brute_force_paths(layers)
    space = TopologySpace(num_layers=layers)
    assert space.size() == count_paths(layers) == len(list(space.grid()))


def test_auto_deeplab_space_size():
    # 12 layers (Auto-DeepLab's L = 12): the DP gives 75,025 valid paths
    assert TopologySpace().size() == count_paths(12) == 75_025


def test_topology_sampling_is_uniform_over_valid_paths():
    space = TopologySpace(num_layers=4)  # 34 paths
    rng = random.Random(0)
    counts = collections.Counter(space.key(space.sample(rng)) for _ in range(34_000))
    assert len(counts) == 34
    # 1000 expected per path; 5 standard deviations ≈ 160
    assert all(840 < c < 1160 for c in counts.values())


def test_topology_validity_and_operators():
    space = TopologySpace(num_layers=6)
    with pytest.raises(ValueError, match=r"layer2 = 16 does not follow layer1 = 4"):
        space.validate({"layer1": 4, "layer2": 16, "layer3": 16, "layer4": 16, "layer5": 16, "layer6": 16})
    with pytest.raises(ValueError, match=r"layer1 = 8 does not follow|decision 'layer1' = 64"):
        space.validate({"layer1": 64, "layer2": 16, "layer3": 16, "layer4": 16, "layer5": 16, "layer6": 16})
    rng = random.Random(1)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        child, mutant = space.crossover(a, b, rng), space.mutate(a, rng, 0.3)
        assert mutant in space and child in space  # validate: well-formed options and a valid path
        assert all(child[n] in (a[n], b[n]) for n in space.names)
    assert {"layer1": 8, "layer2": 16} not in space  # missing layers
    assert {**a, "layer7": 4} not in space  # an unknown decision


def test_topology_json_round_trip():
    space = TopologySpace()  # Auto-DeepLab's 12 layers
    rng = random.Random(5)
    for _ in range(50):
        arch = space.sample(rng)
        data = space.to_json(arch)
        assert list(data) == [f"layer{l}" for l in range(1, 13)]
        assert space.validate(json.loads(json.dumps(data))) == arch
        assert space.key(json.loads(json.dumps(data))) == space.key(arch)
    with pytest.raises(ValueError, match="does not follow"):
        space.to_json({**arch, "layer1": 4, "layer2": 16})  # jumps two rates: not a path


def test_topology_network_follows_its_path():
    space = TopologySpace(num_layers=5)
    arch = {"layer1": 8, "layer2": 16, "layer3": 32, "layer4": 16, "layer5": 8}
    net = space.build(arch).eval()
    shapes = []
    for layer in net.layers:
        layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    # 32 px input: rate s gives 32/s pixels and 8·s/4 channels
    assert shapes == [(16, 4, 4), (32, 2, 2), (64, 1, 1), (32, 2, 2), (16, 4, 4)]
    with pytest.raises(ValueError, match="divisible by the path's largest downsampling rate 32"):
        net(torch.randn(1, 1, 24, 24))
