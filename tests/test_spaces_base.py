"""CategoricalSpace: the generic operators every concrete space inherits."""

import collections
import json
import random

import pytest

from edgeai.spaces import CategoricalSpace, make_rng

DECISIONS = [("width", (0.5, 0.75, 1.0)), ("kernel", (3, 5, 7)), ("act", ("relu", "swish")), ("shape", ((1, 2), (2, 1)))]


@pytest.fixture
def space():
    return CategoricalSpace(DECISIONS)


def test_size_and_grid_agree_with_enumeration(space):
    grid = list(space.grid())
    assert space.size() == len(grid) == 3 * 3 * 2 * 2
    assert len({space.key(a) for a in grid}) == len(grid)
    assert grid[0] == {"width": 0.5, "kernel": 3, "act": "relu", "shape": (1, 2)}
    assert grid[1]["shape"] == (2, 1)  # last decision varies fastest


def test_sampling_is_seeded_uniform_and_valid(space):
    a = [space.sample(random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(0)
    counts = collections.Counter(space.sample(rng)["kernel"] for _ in range(3000))
    assert all(900 < counts[k] < 1100 for k in (3, 5, 7))  # uniform: 1000 expected each
    assert all(space.sample(rng) in space for _ in range(100))


def test_mutation_changes_each_decision_with_the_given_rate(space):
    rng = random.Random(1)
    parent = space.sample(rng)
    changed = collections.Counter()
    n = 4000
    for _ in range(n):
        child = space.mutate(parent, rng, prob=0.25)
        assert child in space
        for name in space.names:
            changed[name] += child[name] != parent[name]
    assert all(abs(changed[name] / n - 0.25) < 0.03 for name in space.names)
    assert space.mutate(parent, rng, prob=0.0) == parent
    assert all(v != parent[k] for k, v in space.mutate(parent, rng, prob=1.0).items())


def test_uniform_crossover_takes_each_gene_from_a_parent(space):
    rng = random.Random(2)
    a = {"width": 0.5, "kernel": 3, "act": "relu", "shape": (1, 2)}
    b = {"width": 1.0, "kernel": 7, "act": "swish", "shape": (2, 1)}
    from_a = collections.Counter()
    for _ in range(2000):
        child = space.crossover(a, b, rng)
        for name in space.names:
            assert child[name] in (a[name], b[name])
            from_a[name] += child[name] == a[name]
    assert all(900 < from_a[name] < 1100 for name in space.names)


def test_encode_and_json_round_trip(space):
    arch = space.sample(random.Random(5))
    vec = space.encode(arch)
    assert len(vec) == space.encoding_size == 10 and sum(vec) == len(space)
    back = json.loads(json.dumps(space.to_json(arch)))
    assert back["shape"] == list(arch["shape"])  # JSON turns tuples into lists ...
    assert space.validate(back) == arch  # ... and validate turns them back
    assert space.from_index(space.index(arch)) == arch


@pytest.mark.parametrize(
    "arch, message",
    [
        ({"width": 0.5, "kernel": 4, "act": "relu", "shape": (1, 2)}, r"decision 'kernel' = 4 is not allowed; options: \[3, 5, 7\]"),
        ({"width": 0.5, "kernel": 3, "act": "relu"}, r"missing decision\(s\) \['shape'\]"),
        ({"width": 0.5, "kernel": 3, "act": "relu", "shape": (1, 2), "depth": 2}, r"unknown decision\(s\) \['depth'\]"),
    ],
)
def test_validate_names_the_bad_decision(space, arch, message):
    with pytest.raises(ValueError, match=message):
        space.validate(arch)


def test_bad_spaces_and_arguments_are_refused(space):
    with pytest.raises(ValueError, match="'k' has no options"):
        CategoricalSpace([("k", ())])
    with pytest.raises(ValueError, match="'k' appears twice"):
        CategoricalSpace([("k", (1,)), ("k", (2,))])
    with pytest.raises(ValueError, match="prob must be in"):
        space.mutate(space.sample(random.Random(0)), random.Random(0), prob=1.5)
    with pytest.raises(TypeError, match="integer seed"):
        make_rng(None)


class Monotone(CategoricalSpace):
    """Toy constrained space: the choices must not decrease."""

    def __init__(self):
        super().__init__([(f"x{i}", (0, 1, 2)) for i in range(4)])

    def explain_infeasible(self, arch):
        values = [arch[n] for n in self.names]
        if values != sorted(values):
            return f"values must not decrease, got {values}"
        return None


def test_constrained_spaces_stay_feasible():
    space = Monotone()
    assert len(list(space.grid())) == 15  # multisets of size 4 from 3 values: C(6, 2)
    rng = random.Random(0)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        assert space.feasible(space.mutate(a, rng, 0.5)) and space.feasible(space.crossover(a, b, rng))
    with pytest.raises(ValueError, match="must not decrease"):
        space.validate({"x0": 2, "x1": 0, "x2": 0, "x3": 0})
