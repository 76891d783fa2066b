"""One ask/tell interface for every search strategy, and one driver that runs any of them.

Lecture 11, "Search Strategy in NAS": a search strategy defines how to explore the search space.
Grid search, random search, evolution and the RL controller differ only in how they propose the
next architecture (`ask`) and what they learn from its score (`tell`); everything else (evaluating
each architecture once, checking constraints, recording trials, progress, checkpoints) lives in
`search`, once.

    strategy = Evolution(space, seed=0)
    result = search(strategy, evaluate, budget=200, constraint=fits_tiny_tier)  # the seed is the strategy's
    result.best.arch, result.best.score, result.pareto("macs", "accuracy")

Scores are maximised. `evaluate(arch)` returns the score, or a dict of metrics with a "score"
entry (e.g. {"score": 0.93, "accuracy": 0.93, "macs": 1.2e6}).

Many candidates at once (`search(..., executor=RayExecutor())`, see `edgeai.executors`): the
driver keeps asking while the strategy can propose without a tell (`Strategy.ready`), evaluates
the asked architectures in parallel, and tells the results back strictly in ask order, so a
seeded search has the same history on one worker or many.
"""

from __future__ import annotations

import collections
import json
import math
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

__all__ = ["Strategy", "SearchExhausted", "TrialError", "Trial", "SearchResult", "search", "pareto_front"]


class SearchExhausted(Exception):
    """Raised by `ask` when a strategy has nothing left to propose (e.g. a finished grid)."""


class TrialError(RuntimeError):
    """An evaluation that raised in a worker (`search(..., executor=..., on_error="raise")`);
    the message names the trial and ends with the worker's traceback."""


class Strategy:
    """Base class of every strategy: `ask() -> arch`, `tell(arch, score)`.

    Subclasses keep all their randomness in `self.rng`, made from the `seed` given to the
    constructor, so that the same seed and the same scores give the same proposals: `search`
    relies on that to resume a checkpoint by replaying it.
    """

    def __init__(self, space, seed: int):
        from edgeai.spaces.base import make_rng  # spaces sit below strategies in the import order

        self.space = space
        self.seed = seed
        self.rng = make_rng(seed)

    def ask(self) -> dict:
        raise NotImplementedError

    def tell(self, arch: dict, score: float) -> None:
        """Learn from the score of an architecture that `ask` proposed (default: nothing)."""

    def ready(self, pending: int) -> float:
        """How many more architectures `ask` can propose now, with `pending` asked ones not yet
        told, each being exactly what it would propose had every earlier ask been told first.
        A parallel search asks that many at once; the sequential default is one at a time
        (1 when nothing is pending, else 0). `math.inf`: the asks never depend on the tells."""
        return 1 if pending == 0 else 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, seed={self.seed})"


@dataclass
class Trial:
    """One step of a search: what was asked and what came of it."""

    index: int  # position in the history, from 0
    arch: dict  # the architecture (JSON-ready)
    score: float  # what the strategy was told (-inf for a skipped, infeasible architecture)
    metrics: dict = field(default_factory=dict)  # what `evaluate` returned, e.g. accuracy, MACs
    status: str = "evaluated"  # "evaluated" | "cached" (a repeat: not evaluated again) | "infeasible" | "failed"
    violations: list = field(default_factory=list)  # why the constraint rejected it
    seconds: float = 0.0  # evaluation time (0 for cached and skipped trials)
    error: str | None = None  # "failed": what `evaluate` raised (score -inf); a repeat of it: the same


def pareto_front(points: Sequence[tuple[float, float]], maximize: tuple[bool, bool] = (True, True)) -> list[int]:
    """Indices of the non-dominated points for two objectives, sorted by the first objective.

    A point dominates another if it is at least as good in both objectives and better in one.
    """
    sign = [1 if m else -1 for m in maximize]
    order = sorted(range(len(points)), key=lambda i: (-sign[0] * points[i][0], -sign[1] * points[i][1]))
    front, best_second = [], -math.inf
    for i in order:
        second = sign[1] * points[i][1]
        if second > best_second:
            front.append(i)
            best_second = second
    return sorted(front, key=lambda i: points[i][0])


@dataclass
class SearchResult:
    """Every trial of a search, in order, with the best one and the Pareto front."""

    history: list[Trial]
    strategy: str = ""
    seed: int | None = None
    budget: int | None = None
    finished: bool = False  # False while a checkpoint is still being written to

    @property
    def evaluated(self) -> list[Trial]:
        return [t for t in self.history if t.status == "evaluated"]

    @property
    def evaluations(self) -> int:
        """How many architectures were actually evaluated (repeats and skips excluded)."""
        return len(self.evaluated)

    @property
    def infeasible(self) -> list[Trial]:
        """The trials the constraint rejected."""
        return [t for t in self.history if t.status == "infeasible"]

    @property
    def failed(self) -> list[Trial]:
        """The trials whose evaluation raised (recorded with `on_error="record"`)."""
        return [t for t in self.history if t.status == "failed"]

    @property
    def best(self) -> Trial:
        """The best evaluated trial (the first one, among equal scores)."""
        candidates = self.evaluated
        if not candidates:
            raise ValueError("the search evaluated no architecture (were all infeasible?)")
        return max(candidates, key=lambda t: (t.score, -t.index))

    def best_so_far(self) -> list[float]:
        """Best score after each evaluation: the search curve."""
        curve, best = [], -math.inf
        for t in self.evaluated:
            best = max(best, t.score)
            curve.append(best)
        return curve

    def evaluations_to_reach(self, score: float) -> int | None:
        """How many evaluations it took to first reach `score` (None if never)."""
        for n, best in enumerate(self.best_so_far(), start=1):
            if best >= score:
                return n
        return None

    def pareto(self, x: str, y: str = "score", maximize: tuple[bool, bool] = (False, True)) -> list[Trial]:
        """Pareto-optimal evaluated trials for metrics `x` and `y` (by default: smaller `x`,
        e.g. MACs or latency, and larger `y`, e.g. accuracy), sorted by `x`."""
        trials = self.evaluated
        points = [(self._metric(t, x), self._metric(t, y)) for t in trials]
        return [trials[i] for i in pareto_front(points, maximize)]

    @staticmethod
    def _metric(t: Trial, name: str) -> float:
        if name == "score":
            return t.score
        if name not in t.metrics:
            raise KeyError(f"trial {t.index} has no metric {name!r}; metrics: {sorted(t.metrics)}")
        return t.metrics[name]

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "budget": self.budget,
            "finished": self.finished,
            "history": [_encode_trial(t) for t in self.history],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON (atomically: a crash never leaves a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: Mapping) -> "SearchResult":
        return cls(
            history=[_decode_trial(t) for t in data["history"]],
            strategy=data.get("strategy", ""),
            seed=data.get("seed"),
            budget=data.get("budget"),
            finished=data.get("finished", False),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchResult":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _encode_trial(t: Trial) -> dict:
    d = asdict(t)
    d["score"] = _encode_float(t.score)
    if d["error"] is None:
        del d["error"]  # files of searches without failures stay as they were
    return d


def _decode_trial(d: Mapping) -> Trial:
    d = dict(d)
    d["score"] = _decode_float(d["score"])
    return Trial(**d)


def _encode_float(x: float):
    return x if math.isfinite(x) else str(x)  # JSON has no infinities


def _decode_float(x) -> float:
    return float(x)


def _violations(constraint, arch) -> list[str]:
    if constraint is None:
        return []
    out = constraint(arch)
    if out is None or out is True:
        return []
    if out is False:
        return ["constraint not satisfied"]
    if isinstance(out, str):
        return [out]
    return [str(v) for v in out]


def _split_metrics(value) -> tuple[float, dict]:
    if isinstance(value, Mapping):
        if "score" not in value:
            raise ValueError(f"evaluate returned metrics without a 'score' entry: {sorted(value)}")
        metrics = {k: v for k, v in value.items() if k != "score"}
        return float(value["score"]), metrics
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), {}
    raise TypeError(f"evaluate must return a number or a dict with a 'score', got {type(value).__name__}")


def search(
    strategy: Strategy,
    evaluate: Callable[[dict], float | Mapping[str, Any]],
    budget: int,
    constraint: Callable[[dict], Iterable[str] | str | bool | None] | None = None,
    on_violation: str = "skip",
    penalty: float = 1.0,
    max_trials: int | None = None,
    max_repeats: int | None = 500,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[Trial], None] | None = None,
    executor=None,
    on_error: str | None = None,
) -> SearchResult:
    """Run `strategy` until `budget` architectures have been evaluated.

    - Each architecture is evaluated once: a repeat is answered from the cache (status "cached")
      and does not count against the budget.
    - `constraint(arch)` returns the list of violations (empty, None or True: satisfied), e.g.
      ["peak activation 410 KB > 320 KB"]. With `on_violation="skip"` (default) an infeasible
      architecture is not evaluated, does not count against the budget, and the strategy is told
      -inf; with "penalize" it is evaluated and told its score minus `penalty`.
    - The search stops early when the strategy is exhausted (a finished grid), after
      `max_trials` asks (default 50 x budget), or after `max_repeats` asks in a row that were all
      repeats of evaluated architectures (a converged strategy; None: no such limit).
    - With `checkpoint=path` the result is written after every trial; `resume=True` continues
      from that file: the recorded trials are replayed into a fresh strategy made with the same
      seed (same asks, same told scores, no evaluation), so a resumed search ends exactly where an
      uninterrupted one would.
    - `executor` (e.g. `edgeai.executors.RayExecutor()`): evaluate in parallel. The driver asks
      as many architectures as `strategy.ready(pending)` allows and the executor has workers,
      and tells the results back in ask order: the history is the same as without an executor.
      A repeat of an architecture still being evaluated is a "cached" trial that gets its score
      when the evaluation ends; the budget counts the evaluations still running; the
      checkpoint holds only the trials told so far (in order), so resuming replays as above.
    - `on_error`: what an exception raised by `evaluate` does. "raise" (default without an
      executor) stops the search (with an executor: a `TrialError` once the trials before it
      are told); "record" (default with an executor) records a trial with status "failed",
      score -inf and the error message, tells the strategy -inf and goes on. A failed
      evaluation counts against the budget, and a repeat of it is answered from the cache.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer (number of evaluations), got {budget!r}")
    if on_violation not in ("skip", "penalize"):
        raise ValueError(f"on_violation must be 'skip' or 'penalize', got {on_violation!r}")
    on_error = ("raise" if executor is None else "record") if on_error is None else on_error
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    workers = None if executor is None else int(executor.workers)
    if workers is not None and workers < 1:
        raise ValueError(f"executor.workers must be a positive integer, got {executor.workers!r}")
    max_trials = 50 * budget if max_trials is None else max_trials
    space = strategy.space
    result = SearchResult(history=[], strategy=type(strategy).__name__, seed=getattr(strategy, "seed", None), budget=budget)
    cache: dict[str, Trial] = {}  # architecture key -> the trial that evaluated it (or failed)
    running: dict[str, _Asked] = {}  # architecture key -> its evaluation still in flight
    handles: dict[Any, _Asked] = {}  # executor handle -> asked trial
    queue: collections.deque[_Asked] = collections.deque()  # asked, not yet told, in ask order

    replay: list[Trial] = []
    if resume and Path(checkpoint).exists():
        saved = SearchResult.load(checkpoint)
        if saved.strategy != result.strategy or saved.seed != result.seed:
            raise ValueError(
                f"checkpoint {checkpoint} was written by {saved.strategy}(seed={saved.seed}), "
                f"not {result.strategy}(seed={result.seed})"
            )
        replay = saved.history

    # What the history will hold once everything asked is told: the sequential loop's stopping
    # rules, applied at ask time (a trial's status is known when it is asked; only its score waits).
    asked, planned_evaluations, planned_repeats, exhausted = 0, 0, 0, False

    def may_ask() -> bool:
        if exhausted or planned_evaluations >= budget or asked >= max_trials:
            return False
        if max_repeats is not None and planned_repeats >= max_repeats:
            return False  # converged: it keeps proposing what it has already seen
        if executor is None:
            return not queue  # in-process: ask, evaluate, tell, one at a time
        if len(handles) >= workers:
            return False
        if strategy.ready(len(queue)) > 0:
            return True
        if not queue:
            raise RuntimeError(f"{type(strategy).__name__}.ready(0) is 0: it can propose nothing, yet waits for no tell")
        return False

    def ask_one() -> None:
        nonlocal asked, planned_evaluations, planned_repeats, exhausted
        try:
            arch = space.validate(strategy.ask())
        except SearchExhausted:
            exhausted = True
            return
        key, index = space.key(arch), asked
        item = _Asked(index, arch, key, space.to_json(arch))
        if index < len(replay):  # resuming: take the recorded outcome instead of evaluating
            trial = replay[index]
            if space.key(trial.arch) != key:
                raise RuntimeError(
                    f"checkpoint {checkpoint} does not match this strategy: trial {index} was "
                    f"{trial.arch}, the strategy now asks {item.arch_json}"
                )
            if trial.status in ("evaluated", "failed"):
                cache[key] = trial
            item.trial, item.replayed = trial, True
            status = trial.status
        elif key in cache:
            item.trial, status = _repeat(index, item.arch_json, cache[key]), "cached"
        elif key in running:
            item.source, status = running[key], "cached"  # its score comes with the first one's
        else:
            item.violations = _violations(constraint, arch)
            if item.violations and on_violation == "skip":
                item.trial = Trial(index, item.arch_json, -math.inf, {}, status="infeasible", violations=item.violations)
                status = "infeasible"
            else:
                status = "evaluated"
                if executor is None:
                    if on_error == "raise":  # the evaluation's own exception, untouched
                        start = time.perf_counter()
                        score, metrics = _split_metrics(evaluate(arch))
                        _finish(item, (score, metrics, None, time.perf_counter() - start), penalty, cache)
                    else:
                        _finish(item, _evaluate_in_worker(evaluate, arch), penalty, cache)
                else:
                    running[key] = item
                    handles[executor.submit(_evaluate_in_worker, evaluate, arch)] = item
        asked += 1
        planned_repeats = planned_repeats + 1 if status == "cached" else 0
        if status in ("evaluated", "failed"):
            planned_evaluations += 1
        queue.append(item)

    bar = tqdm(total=budget, desc=f"{result.strategy} search", disable=not progress, leave=False)
    best = -math.inf
    try:
        while True:
            while may_ask():
                ask_one()
            if not queue:
                break
            if not queue[0].done:  # wait for the oldest one; refill the workers meanwhile
                for handle in executor.wait(list(handles)):
                    item = handles.pop(handle)
                    del running[item.key]
                    try:
                        outcome = executor.result(handle)
                    except Exception as error:  # the worker itself died (killed, out of memory, ...)
                        outcome = (None, None, f"{type(error).__name__}: {error}", 0.0)
                    _finish(item, outcome, penalty, cache)
            while queue and queue[0].done:  # tell, strictly in ask order
                item = queue.popleft()
                trial = item.told()
                if trial.status == "failed" and on_error == "raise" and not item.replayed:
                    raise TrialError(f"trial {trial.index} {trial.arch} failed: {trial.error}")
                strategy.tell(item.arch, trial.score)
                result.history.append(trial)
                if trial.status in ("evaluated", "failed"):
                    best = max(best, trial.score)
                    bar.update(1)
                    bar.set_postfix(best=f"{best:.4g}", refresh=False)
                if callback is not None and not item.replayed:
                    callback(trial)
                if checkpoint is not None and not item.replayed:
                    result.save(checkpoint)
    finally:
        bar.close()
        if handles:  # stopped by an error or an interrupt: drop what is still running
            executor.cancel(list(handles))
    result.finished = True
    if checkpoint is not None:
        result.save(checkpoint)
    return result


@dataclass
class _Asked:
    """An asked architecture on its way to becoming a trial."""

    index: int
    arch: dict
    key: str
    arch_json: dict
    trial: Trial | None = None  # set once its outcome is known
    source: "_Asked | None" = None  # a repeat of an architecture still being evaluated
    violations: list = field(default_factory=list)
    replayed: bool = False  # taken from the checkpoint being resumed

    @property
    def done(self) -> bool:
        return self.trial is not None or (self.source is not None and self.source.trial is not None)

    def told(self) -> Trial:
        if self.trial is None:
            self.trial = _repeat(self.index, self.arch_json, self.source.trial)
        return self.trial


def _repeat(index: int, arch_json: dict, first: Trial) -> Trial:
    return Trial(index, arch_json, first.score, dict(first.metrics), status="cached", error=first.error)


def _evaluate_in_worker(evaluate, arch) -> tuple:
    """Run one evaluation where the executor put it: (score, metrics, error, seconds). An
    exception becomes its message plus traceback, so that it travels back as plain text."""
    start = time.perf_counter()
    try:
        score, metrics = _split_metrics(evaluate(arch))
    except Exception as error:
        message = f"{type(error).__name__}: {error}\n{traceback.format_exc()}".rstrip()
        return None, None, message, time.perf_counter() - start
    return score, metrics, None, time.perf_counter() - start


def _finish(item: _Asked, outcome: tuple, penalty: float, cache: dict) -> None:
    score, metrics, error, seconds = outcome
    if error is not None:
        item.trial = Trial(item.index, item.arch_json, -math.inf, {}, status="failed",
                           violations=item.violations, seconds=seconds, error=error)
    else:
        if item.violations:  # on_violation == "penalize"
            score -= penalty
        item.trial = Trial(item.index, item.arch_json, score, metrics, status="evaluated",
                           violations=item.violations, seconds=seconds)
    cache[item.key] = item.trial
