"""Parallel candidate evaluation: `search(..., executor=...)` tells results back in ask order, so
a seeded search has exactly the sequential history (the oracle: the same search without an
executor) whatever order the workers finish in; repeats of running evaluations, the budget,
max_trials, max_repeats, failures and resume behave as in the sequential run. The thread pool
runs the driver's logic quickly with scrambled completion orders; a local Ray with 2 CPUs runs the
real engine: one session for the module, started by RayExecutor itself and stopped by its
close() (checked: no Ray process left). A fresh interpreter checks that the library never
imports Ray unless asked to."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeai.executors import RayExecutor, ThreadExecutor
from edgeai.spaces import CategoricalSpace
from edgeai.strategies import Evolution, GridSearch, RandomSearch, Reinforce, ReinforceConfig, SearchResult, search
from edgeai.strategies.base import TrialError

SPACE = CategoricalSpace([(f"x{i}", tuple(range(4))) for i in range(6)])  # 4096 architectures
TARGET = {f"x{i}": (3 * i + 1) % 4 for i in range(6)}
SMALL = CategoricalSpace([("a", (0, 1, 2)), ("b", (0, 1, 2))])  # 9: repeats come soon


def score(arch):
    """Deterministic: minus the L1 distance to a hidden target (the optimum scores 0)."""
    return -sum(abs(arch[n] - TARGET.get(n, 1)) for n in arch)


def slow_score(arch):
    """The same score, finishing after a delay that depends on the architecture, so workers
    finish out of ask order."""
    time.sleep(0.001 * (sum(arch.values()) * 7 % 5))
    return score(arch)


def history(result):
    return [(json.dumps(t.arch, sort_keys=True), t.score, t.status, t.violations) for t in result.history]


STRATEGIES = {
    "random": lambda: RandomSearch(SPACE, seed=3),
    "grid": lambda: GridSearch(SMALL),
    "evolution": lambda: Evolution(SPACE, seed=3, population_size=8, parents=3),
    "aging": lambda: Evolution(SPACE, seed=3, aging=True, population_size=8, parents=3, sample_size=3),
    "reinforce": lambda: Reinforce(SPACE, seed=3, config=ReinforceConfig(batch_size=4, lr=0.05, optimizer="sgd")),
}


# --------------------------------------------------------------------------------------------
# The driver's logic, on a thread pool
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def threads():
    with ThreadExecutor(workers=3) as executor:
        yield executor


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_parallel_history_equals_the_sequential_one(kind, threads):
    def constraint(arch):  # cheap, checked by the driver: some asks are infeasible
        return ["x0 = 3"] if arch.get("x0") == 3 else []

    budget = 9 if kind == "grid" else 40
    kwargs = dict(constraint=constraint, progress=False) if kind != "grid" else dict(progress=False)
    sequential = search(STRATEGIES[kind](), score, budget, **kwargs)
    parallel = search(STRATEGIES[kind](), slow_score, budget, executor=threads, **kwargs)
    assert history(parallel) == history(sequential)
    assert parallel.evaluations == sequential.evaluations
    assert [t.index for t in parallel.history] == list(range(len(parallel.history)))
    if kind != "grid":
        assert parallel.infeasible and parallel.evaluations == budget


def test_asks_run_ahead_only_as_far_as_the_strategy_allows():
    # generational evolution: a generation in flight at once, never a child before its parents' scores
    strategy = Evolution(SPACE, seed=0, population_size=6, parents=2)
    assert strategy.ready(0) == 6
    for k in range(6):
        strategy.ask()
        assert strategy.ready(k + 1) == 5 - k
    assert strategy.ready(6) == 0
    # aging evolution: the random population at once, then one child per tell
    aging = Evolution(SPACE, seed=0, aging=True, population_size=4, parents=2, sample_size=2)
    assert aging.ready(0) == 4 and aging.ready(3) == 1 and aging.ready(4) == 0
    # REINFORCE: the rest of a batch sampled from one policy
    rl = Reinforce(SPACE, seed=0, config=ReinforceConfig(batch_size=3))
    assert rl.ready(0) == 3 and rl.ready(2) == 1 and rl.ready(3) == 0
    assert math.isinf(RandomSearch(SPACE, seed=0).ready(100))


def test_repeats_of_running_evaluations_are_cached_and_the_budget_is_exact(threads):
    calls = []
    lock = threading.Lock()

    def evaluate(arch):
        with lock:
            calls.append(json.dumps(arch, sort_keys=True))
        time.sleep(0.002)
        return arch["a"] * 3 + arch["b"]

    sequential = search(RandomSearch(SMALL, seed=1), evaluate, budget=7, progress=False)
    calls.clear()
    parallel = search(RandomSearch(SMALL, seed=1), evaluate, budget=7, executor=threads, progress=False)
    assert history(parallel) == history(sequential)
    assert len(calls) == len(set(calls)) == 7  # each architecture once, no evaluation past the budget
    cached = [t for t in parallel.history if t.status == "cached"]
    assert cached and all(t.score == t.arch["a"] * 3 + t.arch["b"] and t.seconds == 0 for t in cached)


def test_max_trials_and_max_repeats_match_the_sequential_run(threads):
    class Stuck(RandomSearch):  # proposes the same architecture forever
        def ask(self):
            return {"a": 1, "b": 2}

    seq = search(Stuck(SMALL, seed=0), score, budget=5, max_repeats=10, progress=False)
    par = search(Stuck(SMALL, seed=0), slow_score, budget=5, max_repeats=10, executor=threads, progress=False)
    assert history(par) == history(seq) and len(par.history) == 11  # 1 evaluation, then 10 repeats
    seq = search(RandomSearch(SMALL, seed=2), score, budget=9, max_trials=6, progress=False)
    par = search(RandomSearch(SMALL, seed=2), slow_score, budget=9, max_trials=6, executor=threads, progress=False)
    assert history(par) == history(seq) and len(par.history) == 6


def fails_on_a2(arch):
    if arch["a"] == 2:
        raise ValueError(f"cannot train a={arch['a']}")
    return score(arch)


def test_a_failing_trial_is_recorded_not_fatal(threads, tmp_path):
    result = search(RandomSearch(SMALL, seed=0), fails_on_a2, budget=8, executor=threads, progress=False,
                    checkpoint=tmp_path / "s.json")
    assert result.failed and result.evaluations + len(result.failed) == 8  # a failure used its evaluation
    first = result.failed[0]
    assert first.score == -math.inf and first.error.startswith("ValueError: cannot train a=2")
    assert "Traceback" in first.error  # the worker's traceback travels back as text
    repeats = [t for t in result.history if t.status == "cached" and t.arch["a"] == 2]
    assert all(t.error == first.error and t.score == -math.inf for t in repeats)
    back = SearchResult.load(tmp_path / "s.json")  # JSON keeps the failures
    assert history(back) == history(result) and back.failed[0].error == first.error
    # the same in-process with on_error="record"; "raise" (the in-process default) stops the search
    inline = search(RandomSearch(SMALL, seed=0), fails_on_a2, budget=8, on_error="record", progress=False)
    assert history(inline) == history(result)
    with pytest.raises(ValueError, match="cannot train"):
        search(RandomSearch(SMALL, seed=0), fails_on_a2, budget=8, progress=False)
    with pytest.raises(TrialError, match=r"trial \d+ .* failed: ValueError: cannot train a=2"):
        search(RandomSearch(SMALL, seed=0), fails_on_a2, budget=8, executor=threads, on_error="raise", progress=False)
    with pytest.raises(ValueError, match="on_error must be"):
        search(RandomSearch(SMALL, seed=0), score, budget=1, on_error="ignore")


def test_an_interrupted_parallel_search_resumes_to_the_same_end(threads, tmp_path):
    def make():
        return Evolution(SPACE, seed=5, population_size=8, parents=3)

    full = search(make(), score, budget=30, progress=False)
    told = []

    def dies_at_13(trial):
        told.append(trial)
        if len(told) == 13:
            raise KeyboardInterrupt

    ckpt = tmp_path / "search.json"
    with pytest.raises(KeyboardInterrupt):
        search(make(), slow_score, budget=30, checkpoint=ckpt, executor=threads, callback=dies_at_13, progress=False)
    partial = SearchResult.load(ckpt)
    # the 13th was told, then the callback died before its checkpoint: 12 trials, in ask order
    assert history(partial) == history(full)[:12] and not partial.finished
    resumed = search(make(), slow_score, budget=30, checkpoint=ckpt, resume=True, executor=threads, progress=False)
    assert history(resumed) == history(full)


# --------------------------------------------------------------------------------------------
# The real engine: a local Ray with 2 CPUs
# --------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]

def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_importing_the_library_does_not_import_ray():
    """Ray is an optional extra, imported only by RayExecutor: every module of edgeai imports without it."""
    code = """
import importlib, json, pkgutil, sys
import edgeai
names = [m.name for m in pkgutil.walk_packages(edgeai.__path__, "edgeai.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "ray": sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))}))
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"edgeai.executors", "edgeai.cli", "edgeai.runs", "edgeai.strategies.darts"} <= set(report["modules"])
    assert report["ray"] == []


@pytest.fixture(scope="module")
def ray_executor():
    """A RayExecutor that starts a local Ray of its own (2 CPUs) and, at the end of the module,
    stops it: Ray no longer initialised, and every process it started (GCS, raylet, workers) gone."""
    ray = pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this test file
    if ray.is_initialized():  # left by another test module of this process
        ray.shutdown()
    here = psutil.Process()
    before = {p.pid for p in here.children(recursive=True)}
    executor = RayExecutor(num_cpus=1, init=dict(num_cpus=2, log_to_driver=False, configure_logging=False))
    assert ray.is_initialized(), "RayExecutor did not start a local Ray"
    try:
        yield executor
    finally:
        started = [p for p in here.children(recursive=True) if p.pid not in before]
        executor.close()
    assert started, "no Ray process was started"
    assert not ray.is_initialized(), "close() left the Ray session it started running"
    _, alive = psutil.wait_procs(started, timeout=20)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes of Ray left running after close(): {[p.name() for p in alive]}"


@pytest.mark.xdist_group("ray")
@pytest.mark.parametrize("kind", ["random", "grid", "evolution"])
def test_ray_history_equals_the_sequential_one(kind, ray_executor):
    budget = 9 if kind == "grid" else 24
    assert ray_executor.workers == 2
    sequential = search(STRATEGIES[kind](), score, budget, progress=False)
    parallel = search(STRATEGIES[kind](), slow_score, budget, executor=ray_executor, progress=False)
    assert history(parallel) == history(sequential)
    assert all(t.seconds > 0 for t in parallel.evaluated)  # timed in the worker


@pytest.mark.xdist_group("ray")
def test_ray_executor_leaves_a_session_it_did_not_start_running(ray_executor):
    import ray

    executor = RayExecutor(num_cpus=1)  # Ray is already initialised (by ray_executor): used as it is
    assert executor.workers == 2 and ray_executor.workers == 2  # 2 CPUs, 1 per trial
    executor.close()
    assert ray.is_initialized()
    with pytest.raises(ValueError, match="already initialised"):
        RayExecutor(num_cpus=1, init=dict(num_cpus=2))


@pytest.mark.xdist_group("ray")
def test_ray_records_a_failing_trial_and_goes_on(ray_executor):
    result = search(RandomSearch(SMALL, seed=0), fails_on_a2, budget=8, executor=ray_executor, progress=False)
    inline = search(RandomSearch(SMALL, seed=0), fails_on_a2, budget=8, on_error="record", progress=False)
    assert [h[:3] for h in history(result)] == [h[:3] for h in history(inline)]
    assert result.failed and result.failed[0].error.startswith("ValueError: cannot train a=2")
    assert result.evaluations + len(result.failed) == 8


@pytest.mark.xdist_group("ray")
def test_edgeai_search_on_ray_has_the_local_history(ray_executor, tmp_path):
    from edgeai.cli import main

    args = ["search", "--strategy", "random", "--budget", "3", "--epochs", "1", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "local")]) == 0
    assert main(args + ["--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2"]) == 0
    local, ray = (json.loads((tmp_path / name / "results.json").read_text())["history"] for name in ("local", "ray"))
    strip = lambda history: [(t["arch"], t["score"], t["status"], t["metrics"]) for t in history]  # noqa: E731
    assert strip(ray) == strip(local)  # the candidates trained in Ray's workers score bit for bit the same
    assert "2 trials at once on Ray" in (tmp_path / "ray" / "log.txt").read_text()


@pytest.mark.parametrize("args, message", [
    (["--strategy", "random", "--workers", "2"], "--workers go with --executor ray"),
    (["--strategy", "random", "--ray-address", "auto", "--gpus-per-trial", "0.5"], "--ray-address, --gpus-per-trial go with --executor ray"),
    (["--strategy", "darts", "--executor", "ray"], "darts trains one supernet"),
    (["--strategy", "random", "--executor", "ray", "--gpus-per-trial", "-1"], "'-1' must be >= 0"),
    (["--strategy", "random", "--executor", "ray", "--cpus-per-trial", "0"], "'0' must be > 0"),
])
def test_bad_executor_options_get_one_clear_line(args, message, capsys, tmp_path):
    from edgeai.cli import main

    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["search", *args, "--out", str(tmp_path / "run")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_bad_executor_arguments():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        ThreadExecutor(workers=0)
    with pytest.raises(ValueError, match="num_gpus must be a number >= 0"):
        RayExecutor(num_gpus=-1)
    with pytest.raises(ValueError, match="num_cpus must be a positive number"):
        RayExecutor(num_cpus=0)
