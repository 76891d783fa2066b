"""Search strategies on toy spaces whose optimum is known (NNI-style strategy tests), the driver's
constraint handling, checkpoint/resume and JSON round trip."""

from __future__ import annotations

import json
import math

import pytest

from edgeai.spaces import CategoricalSpace
from edgeai.strategies import (
    CompoundScalingSpace,
    Evolution,
    GridSearch,
    RandomSearch,
    SearchExhausted,
    SearchResult,
    compound_scaling,
    mnasnet_reward,
    pareto_front,
    search,
)
from edgeai.strategies.grid import EFFICIENTNET_COEFFICIENTS, LECTURE_WIDTH_RESOLUTION_ACCURACY, flops_multiplier

# A toy space with a unique optimum: 10 decisions of 4 options (4^10 ≈ 1.05M architectures);
# the score is minus the L1 distance to a hidden target, so the optimum scores exactly 0.
D, K = 10, 4
BIG = CategoricalSpace([(f"x{i}", tuple(range(K))) for i in range(D)])
TARGET = {f"x{i}": (3 * i + 1) % K for i in range(D)}
SMALL = CategoricalSpace([(f"x{i}", tuple(range(K))) for i in range(4)])  # 256 architectures


def distance_score(arch):
    return -sum(abs(arch[n] - TARGET[n]) for n in arch)


def history(result):
    return [(json.dumps(t.arch, sort_keys=True), t.score, t.status) for t in result.history]


def test_grid_search_finds_the_optimum_exactly_and_stops():
    result = search(GridSearch(SMALL), distance_score, budget=10_000, progress=False)
    assert result.evaluations == SMALL.size() == 256  # every point once, then exhausted
    assert result.best.score == 0 and result.best.arch == {n: TARGET[n] for n in SMALL.names}
    strategy = GridSearch(SMALL)
    for _ in range(256):
        strategy.ask()
    with pytest.raises(SearchExhausted):
        strategy.ask()


def test_shuffled_grid_is_seeded_and_still_complete():
    a = search(GridSearch(SMALL, seed=1, shuffle=True), distance_score, budget=256, progress=False)
    b = search(GridSearch(SMALL, seed=1, shuffle=True), distance_score, budget=256, progress=False)
    assert history(a) == history(b)
    assert len({json.dumps(t.arch) for t in a.history}) == 256
    assert [t.arch for t in a.history] != [t.arch for t in search(GridSearch(SMALL), distance_score, 256, progress=False).history]


@pytest.mark.parametrize("seed", range(4))
def test_evolution_reaches_the_optimum(seed):
    # measured on seeds 0-4: the optimum after 299-405 evaluations (population 100, 25 parents)
    result = search(Evolution(BIG, seed=seed), distance_score, budget=600, progress=False)
    assert result.best.score == 0
    assert result.evaluations_to_reach(0) <= 600


@pytest.mark.parametrize("seed", range(4))
def test_aging_evolution_reaches_the_optimum(seed):
    # measured on seeds 0-4: the optimum after 121-213 evaluations (P=50, S=10)
    strategy = Evolution(BIG, seed=seed, aging=True, population_size=50, sample_size=10)
    result = search(strategy, distance_score, budget=400, progress=False)
    assert result.best.score == 0
    assert len(strategy.population) == 50  # the oldest die: the population keeps its size


@pytest.mark.parametrize("seed", range(4))
def test_random_search_comes_close_but_evolution_is_better_on_a_large_space(seed):
    # random search: 600 uniform draws from ~1M architectures; the expected best is ~-4
    rand = search(RandomSearch(BIG, seed=seed), distance_score, budget=600, progress=False)
    assert -7 <= rand.best.score < 0
    evo = search(Evolution(BIG, seed=seed), distance_score, budget=600, progress=False)
    assert evo.best.score > rand.best.score


def test_evolution_keeps_the_best_parents_and_records_generations():
    strategy = Evolution(BIG, seed=0, population_size=20, parents=5)
    search(strategy, distance_score, budget=100, progress=False)
    assert len(strategy.population) == 5
    scores = [s for _, s in strategy.population]
    assert scores == sorted(scores, reverse=True)
    bests = [g.best for g in strategy.generations]
    assert bests == sorted(bests)  # elitism: the best never gets worse
    assert strategy.generations[0].size == 20


def test_bergstra_bengio_random_beats_grid_when_few_decisions_matter():
    # Bergstra & Bengio 2012, Fig. 1: two decisions, only the first matters. A 4x4 grid (budget 16)
    # tries 4 values of the important one (8, 24, 40, 56); 16 random draws try up to 16 of its 64.
    values = tuple(range(64))
    space = CategoricalSpace([("important", values), ("unimportant", values)])
    coarse = CategoricalSpace([("important", values[8::16]), ("unimportant", values[8::16])])

    def score(arch):  # peaked at 16, halfway between two grid values
        return -abs(arch["important"] - 16)

    grid_best = search(GridSearch(coarse), score, budget=16, progress=False).best.score
    random_bests = [search(RandomSearch(space, seed=s), score, budget=16, progress=False).best.score for s in range(10)]
    assert grid_best == -8
    # a random draw lands within 7 of the peak with probability 15/64, so 16 draws beat the grid
    # with probability 1 - (49/64)^16 = 0.986 per seed
    assert sum(b > grid_best for b in random_bests) >= 9
    assert sum(random_bests) / 10 > grid_best


def test_same_seed_same_history():
    for make in (lambda s: RandomSearch(BIG, seed=s), lambda s: Evolution(BIG, seed=s, population_size=20, parents=5),
                 lambda s: Evolution(BIG, seed=s, aging=True, population_size=20, parents=5, sample_size=5)):
        a, b, c = (search(make(s), distance_score, budget=60, progress=False) for s in (3, 3, 4))
        assert history(a) == history(b)
        assert history(a) != history(c)


def test_constraint_skips_counts_and_names_violations():
    def constraint(arch):
        return [f"x0={arch['x0']} > 1"] if arch["x0"] > 1 else []

    calls = []

    def evaluate(arch):
        calls.append(arch)
        return {"score": distance_score(arch), "x0": arch["x0"]}

    result = search(RandomSearch(SMALL, seed=0), evaluate, budget=40, constraint=constraint, progress=False)
    assert result.evaluations == len(calls) == 40  # skipped ones do not count against the budget
    assert result.infeasible and all(t.arch["x0"] > 1 for t in result.infeasible)
    assert all(t.violations == [f"x0={t.arch['x0']} > 1"] and t.score == -math.inf for t in result.infeasible)
    assert all(a["x0"] <= 1 for a in calls)
    assert result.best.arch["x0"] <= 1

    penalized = search(RandomSearch(SMALL, seed=0), evaluate, budget=40, constraint=constraint,
                       on_violation="penalize", penalty=100, progress=False)
    bad = [t for t in penalized.evaluated if t.violations]
    assert bad and all(t.score == distance_score(t.arch) - 100 for t in bad)


def test_a_converged_strategy_stops_after_max_repeats():
    class Stuck(RandomSearch):
        def ask(self):
            return {n: 0 for n in self.space.names}

    result = search(Stuck(SMALL, seed=0), distance_score, budget=100, max_repeats=25, progress=False)
    assert result.evaluations == 1 and len(result.history) == 26  # one evaluation, then 25 repeats
    assert all(t.status == "cached" for t in result.history[1:])


def test_repeats_are_answered_from_the_cache():
    calls = []

    def evaluate(arch):
        calls.append(arch)
        return arch["a"] + arch["b"]

    tiny = CategoricalSpace([("a", (0, 1)), ("b", (0, 1))])
    result = search(RandomSearch(tiny, seed=0), evaluate, budget=4, progress=False)
    assert len(calls) == result.evaluations == 4
    assert len({json.dumps(a, sort_keys=True) for a in calls}) == 4
    cached = [t for t in result.history if t.status == "cached"]
    assert cached and all(t.seconds == 0 for t in cached)


@pytest.mark.parametrize("kind", ["random", "evolution", "aging"])
def test_interrupted_search_resumes_to_the_same_end(kind, tmp_path):
    def make():
        return {"random": RandomSearch(BIG, seed=7),
                "evolution": Evolution(BIG, seed=7, population_size=30, parents=8),
                "aging": Evolution(BIG, seed=7, aging=True, population_size=30, sample_size=6)}[kind]

    full = search(make(), distance_score, budget=150, progress=False)

    calls = []

    def dies_at_97(arch):
        calls.append(1)
        if len(calls) == 97:
            raise KeyboardInterrupt
        return distance_score(arch)

    ckpt = tmp_path / "search.json"
    with pytest.raises(KeyboardInterrupt):
        search(make(), dies_at_97, budget=150, checkpoint=ckpt, progress=False)
    partial = SearchResult.load(ckpt)
    assert not partial.finished and partial.evaluations == 96

    resumed = search(make(), distance_score, budget=150, checkpoint=ckpt, resume=True, progress=False)
    assert history(resumed) == history(full)
    assert SearchResult.load(ckpt).finished


def test_resume_refuses_a_checkpoint_of_another_search(tmp_path):
    ckpt = tmp_path / "s.json"
    search(RandomSearch(SMALL, seed=1), distance_score, budget=5, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match=r"written by RandomSearch\(seed=1\)"):
        search(RandomSearch(SMALL, seed=2), distance_score, budget=10, checkpoint=ckpt, resume=True, progress=False)


def test_result_json_round_trip_and_pareto(tmp_path):
    def evaluate(arch):
        macs = sum(arch.values())
        return {"score": -abs(macs - 6) + 0.1 * macs, "macs": macs}

    result = search(RandomSearch(SMALL, seed=0), evaluate, budget=30, progress=False)
    back = SearchResult.load(result.save(tmp_path / "r.json"))
    assert history(back) == history(result) and back.best.arch == result.best.arch
    front = result.pareto("macs", "score")
    xs = [t.metrics["macs"] for t in front]
    assert xs == sorted(xs)
    for t in result.evaluated:  # nothing on the front is dominated
        assert not any(o.metrics["macs"] <= t.metrics["macs"] and o.score >= t.score
                       and (o.metrics["macs"], o.score) != (t.metrics["macs"], t.score) for o in result.evaluated) \
            or t not in front


def test_pareto_front_by_hand():
    points = [(1, 1), (2, 3), (3, 2), (4, 4), (2, 1)]  # minimise x, maximise y
    assert [points[i] for i in pareto_front(points, maximize=(False, True))] == [(1, 1), (2, 3), (4, 4)]


def test_bad_search_arguments():
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        search(RandomSearch(SMALL, seed=0), distance_score, budget=0)
    with pytest.raises(ValueError, match="on_violation must be"):
        search(RandomSearch(SMALL, seed=0), distance_score, budget=1, on_violation="ignore")
    with pytest.raises(ValueError, match="'score'"):
        search(RandomSearch(SMALL, seed=0), lambda a: {"accuracy": 1}, budget=1, progress=False)
    with pytest.raises(ValueError, match="parents must be between 1 and population_size=10"):
        Evolution(SMALL, seed=0, population_size=10, parents=11)


# ------------------------------------------------------------------ EfficientNet compound scaling


def test_efficientnet_coefficients_satisfy_the_flops_doubling_constraint():
    # Tan & Le 2019, Eq. 3: alpha * beta^2 * gamma^2 ≈ 2; 1.2 * 1.1^2 * 1.15^2 = 1.9203
    c = EFFICIENTNET_COEFFICIENTS
    assert flops_multiplier(c["alpha"], c["beta"], c["gamma"]) == pytest.approx(1.9203, abs=1e-4)
    space = CompoundScalingSpace()
    assert {"alpha": 1.2, "beta": 1.1, "gamma": 1.15} in space
    assert {"alpha": 1.4, "beta": 1.4, "gamma": 1.4} not in space
    grid = list(space.grid())
    assert len(grid) == space.size() > 10
    assert all(abs(flops_multiplier(**a) - 2) <= 0.1 for a in grid)
    scaled = compound_scaling(phi=3)  # B3-like: FLOPs (1.92)^3 ≈ 7.1x
    assert scaled["flops"] == pytest.approx(1.9203**3, rel=1e-3)
    assert scaled["depth"] == pytest.approx(1.2**3)
    with pytest.raises(ValueError, match="beta must be >= 1"):
        compound_scaling(1, beta=0.9)


def test_grid_search_over_compound_coefficients_prefers_balanced_scaling():
    # EfficientNet's reasoning (Fig. 3, 4): scaling one dimension saturates; with a concave
    # gain in each log-multiplier, the best point under the FLOPs constraint spreads the budget.
    def accuracy(arch):
        d, w, r = arch["alpha"], arch["beta"], arch["gamma"]
        return sum(1 - x ** -4 for x in (d, w**2, r**2))

    space = CompoundScalingSpace()
    result = search(GridSearch(space), accuracy, budget=1000, progress=False)
    assert result.evaluations == space.size() == 75  # the whole constrained grid
    # symmetric concave gains in alpha, beta^2, gamma^2 under alpha*beta^2*gamma^2 = 2 peak at
    # alpha = beta^2 = gamma^2 = 2^(1/3): alpha ≈ 1.26, beta = gamma ≈ 1.12; on the 0.05 grid:
    assert result.best.arch == {"alpha": 1.2, "beta": 1.15, "gamma": 1.15}


def test_lecture_grid_with_a_latency_constraint():
    # The lecture's table; latency grows with width^2 * resolution^2 (MACs), limit 1.5x the base
    def latency(w, r):
        return w**2 * r**2

    ok = {k: acc for k, acc in LECTURE_WIDTH_RESOLUTION_ACCURACY.items() if latency(*k) <= 1.5}
    best = max(ok, key=ok.get)
    assert best == (1.0, 1.2) and ok[best] == 0.549  # 1.2x resolution beats 1.1x width at equal cost


def test_mnasnet_reward():
    # Tan et al. 2019: w = -0.07; at the target the reward is the accuracy
    assert mnasnet_reward(0.75, 80, 80) == 0.75
    assert mnasnet_reward(0.75, 160, 80) == pytest.approx(0.75 * 2**-0.07)
    assert mnasnet_reward(0.75, 40, 80, alpha=0, beta=-1) == 0.75
    with pytest.raises(ValueError, match="latency and target must be positive"):
        mnasnet_reward(0.7, 0, 80)
