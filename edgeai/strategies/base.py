"""One ask/tell interface for every search strategy, and one driver that runs any of them.

Lecture 11, "Search Strategy in NAS": a search strategy defines how to explore the search space.
Grid search, random search, evolution and the RL controller differ only in how they propose the
next architecture (`ask`) and what they learn from its score (`tell`); everything else (evaluating
each architecture once, checking constraints, recording trials, progress, checkpoints) lives in
`search`, once.

    strategy = Evolution(space, seed=0)
    result = search(strategy, evaluate, budget=200, constraint=fits_tiny_tier, seed=0)
    result.best.arch, result.best.score, result.pareto("macs", "accuracy")

Scores are maximised. `evaluate(arch)` returns the score, or a dict of metrics with a "score"
entry (e.g. {"score": 0.93, "accuracy": 0.93, "macs": 1.2e6}).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

__all__ = ["Strategy", "SearchExhausted", "Trial", "SearchResult", "search", "pareto_front"]


class SearchExhausted(Exception):
    """Raised by `ask` when a strategy has nothing left to propose (e.g. a finished grid)."""


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, seed={self.seed})"


@dataclass
class Trial:
    """One step of a search: what was asked and what came of it."""

    index: int  # position in the history, from 0
    arch: dict  # the architecture (JSON-ready)
    score: float  # what the strategy was told (-inf for a skipped, infeasible architecture)
    metrics: dict = field(default_factory=dict)  # what `evaluate` returned, e.g. accuracy, MACs
    status: str = "evaluated"  # "evaluated" | "cached" (a repeat: not evaluated again) | "infeasible"
    violations: list = field(default_factory=list)  # why the constraint rejected it
    seconds: float = 0.0  # evaluation time (0 for cached and skipped trials)


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
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer (number of evaluations), got {budget!r}")
    if on_violation not in ("skip", "penalize"):
        raise ValueError(f"on_violation must be 'skip' or 'penalize', got {on_violation!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    max_trials = 50 * budget if max_trials is None else max_trials
    space = strategy.space
    result = SearchResult(history=[], strategy=type(strategy).__name__, seed=getattr(strategy, "seed", None), budget=budget)
    cache: dict[str, tuple[float, dict]] = {}

    replay: list[Trial] = []
    if resume and Path(checkpoint).exists():
        saved = SearchResult.load(checkpoint)
        if saved.strategy != result.strategy or saved.seed != result.seed:
            raise ValueError(
                f"checkpoint {checkpoint} was written by {saved.strategy}(seed={saved.seed}), "
                f"not {result.strategy}(seed={result.seed})"
            )
        replay = saved.history

    bar = tqdm(total=budget, desc=f"{result.strategy} search", disable=not progress, leave=False)
    evaluations, best, repeats = 0, -math.inf, 0
    try:
        while evaluations < budget and len(result.history) < max_trials:
            if max_repeats is not None and repeats >= max_repeats:
                break  # converged: it keeps proposing what it has already seen
            try:
                arch = space.validate(strategy.ask())
            except SearchExhausted:
                break
            key = space.key(arch)
            index = len(result.history)
            if index < len(replay):  # resuming: take the recorded outcome instead of evaluating
                trial = replay[index]
                if space.key(trial.arch) != key:
                    raise RuntimeError(
                        f"checkpoint {checkpoint} does not match this strategy: trial {index} was "
                        f"{trial.arch}, the strategy now asks {space.to_json(arch)}"
                    )
                if trial.status == "evaluated":
                    cache[key] = (trial.score, trial.metrics)
            else:
                trial = _run_trial(index, arch, key, space, evaluate, constraint, on_violation, penalty, cache)
            strategy.tell(arch, trial.score)
            result.history.append(trial)
            repeats = repeats + 1 if trial.status == "cached" else 0
            if trial.status == "evaluated":
                evaluations += 1
                best = max(best, trial.score)
                bar.update(1)
                bar.set_postfix(best=f"{best:.4g}", refresh=False)
            if callback is not None and index >= len(replay):
                callback(trial)
            if checkpoint is not None and index >= len(replay):
                result.save(checkpoint)
    finally:
        bar.close()
    result.finished = True
    if checkpoint is not None:
        result.save(checkpoint)
    return result


def _run_trial(index, arch, key, space, evaluate, constraint, on_violation, penalty, cache) -> Trial:
    arch_json = space.to_json(arch)
    if key in cache:
        score, metrics = cache[key]
        return Trial(index, arch_json, score, dict(metrics), status="cached")
    violations = _violations(constraint, arch)
    if violations and on_violation == "skip":
        return Trial(index, arch_json, -math.inf, {}, status="infeasible", violations=violations)
    start = time.perf_counter()
    score, metrics = _split_metrics(evaluate(arch))
    seconds = time.perf_counter() - start
    if violations:  # on_violation == "penalize"
        score -= penalty
    cache[key] = (score, metrics)
    return Trial(index, arch_json, score, metrics, status="evaluated", violations=violations, seconds=seconds)
