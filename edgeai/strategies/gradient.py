"""What the two gradient-based strategies share (Lecture 11, "Search Strategy: Gradient Descent").

DARTS and ProxylessNAS do not ask/tell: they train one weight-sharing supernet whose
architecture parameters α are learned by gradient descent, alternating two steps (the bilevel
optimisation of DARTS, Liu et al. 2019, Eq. 3-4):

    w ← w − ξ ∇_w L_train(w, α)          on one half of the training split
    α ← α − ξ' ∇_α L_val(w, α)           on the other half (DARTS: "half of the CIFAR-10
                                          training data as the validation set")

and derive a discrete architecture from α at the end. This module holds the pieces both use:

    split_for_search(train, portion)   the two halves (DARTS's `train_portion`, ordered as DARTS does)
    GradientSearchResult               a `SearchResult` with one trial per epoch (the architecture
                                       derived after that epoch, scored by the supernet's validation
                                       accuracy), the final derived architecture and α over time
    run_epochs(searcher, ...)          the epoch loop: progress bar, one checkpoint per epoch
                                       (weights, α, optimizer states, RNG states), resume

A *searcher* (`DartsSearch`, `ProxylessSearch`) is any object with
    epoch                                   epochs done so far
    train_epoch(w_split, a_split) -> dict   one epoch of alternating steps, metrics read once at the end
    evaluate(split) -> float                the supernet's accuracy on a split
    derive() -> dict                        the discrete architecture α points to now (JSON-ready)
    arch_probabilities() -> dict            softmax(α), JSON-ready, for "α over time" plots
    state_dict() / load_state_dict(state)   everything needed to continue bit-exactly
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from edgeai import distributed as dist
from edgeai.data import Dataset, Split
from edgeai.strategies.base import SearchResult, Trial

__all__ = ["GradientSearchResult", "split_for_search", "run_epochs"]


@dataclass
class GradientSearchResult(SearchResult):
    """A gradient search's outcome in the driver's format: `history` holds one trial per epoch
    (arch: the architecture derived after that epoch; score: the supernet's validation accuracy;
    metrics: losses, accuracies, learning rate, seconds), plus the final derived architecture
    and softmax(α) after every epoch."""

    arch: dict | None = None  # the architecture derived at the end of the search
    alphas: list = field(default_factory=list)  # softmax(α) after each epoch (JSON-ready)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "arch": self.arch, "alphas": self.alphas}

    @classmethod
    def from_dict(cls, data) -> "GradientSearchResult":
        base = SearchResult.from_dict(data)
        return cls(history=base.history, strategy=base.strategy, seed=base.seed, budget=base.budget,
                   finished=base.finished, arch=data.get("arch"), alphas=list(data.get("alphas", [])))


def split_for_search(train: Split, portion: float = 0.5) -> tuple[Split, Split]:
    """The training split cut in two: the first `portion` trains the weights w, the rest the
    architecture α (DARTS's `train_search.py`: `indices[:split]` and `indices[split:]` of the
    training set, in order; the course's splits are already shuffled)."""
    if isinstance(portion, bool) or not isinstance(portion, (int, float)) or not 0 < portion < 1:
        raise ValueError(f"train_portion must be strictly between 0 and 1, got {portion!r}")
    n = int(math.floor(portion * len(train)))
    if n < 1 or n >= len(train):
        raise ValueError(f"train_portion={portion} leaves an empty half of a {len(train)}-sample training split")
    return Split(train.x[:n], train.y[:n]), Split(train.x[n:], train.y[n:])


def _save(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written checkpoint


def run_epochs(
    searcher,
    data: Dataset,
    epochs: int,
    *,
    name: str,
    seed: int,
    config: dict,
    train_portion: float = 0.5,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[Trial], None] | None = None,
) -> GradientSearchResult:
    """Train `searcher` until it has done `epochs` epochs on `data` (already on its device).

    After every epoch: a trial (the derived architecture, the supernet's accuracy on `data.val`),
    softmax(α), and, with `checkpoint=path`, a checkpoint holding the searcher's state (weights, α,
    optimizer and scheduler states, RNG states) and the result so far. `resume=True` continues
    from that file (it must come from the same `name`, `seed` and `config`), so a killed search
    resumed ends exactly where an uninterrupted one would. `callback(trial)` runs after each
    epoch's checkpoint is written. Data-parallel (under torchrun): every rank runs the loop, rank 0
    alone writes the checkpoint, shows the progress bar and calls `callback`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    result = GradientSearchResult(history=[], strategy=name, seed=seed, budget=epochs)
    path = None if checkpoint is None else Path(checkpoint)
    if resume and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)  # every rank reads it
        if saved["name"] != name or saved["seed"] != seed or saved["config"] != config:
            raise ValueError(f"checkpoint {path} was written by another search ({saved['name']}, seed "
                             f"{saved['seed']}, config {saved['config']}), not {name}, seed {seed}, config {config}")
        searcher.load_state_dict(saved["searcher"])
        result = GradientSearchResult.from_dict(saved["result"])
        result.budget, result.finished = epochs, False
    w_split, a_split = split_for_search(data.train, train_portion)
    main = dist.is_main()
    path = path if main else None  # one writer
    bar = tqdm(total=epochs, initial=searcher.epoch, desc=f"{name} search", disable=not progress or not main,
               leave=False, unit="epoch")
    try:
        while searcher.epoch < epochs:
            start = time.perf_counter()
            metrics = searcher.train_epoch(w_split, a_split)
            score = searcher.evaluate(data.val)
            metrics["seconds"] = time.perf_counter() - start
            trial = Trial(len(result.history), searcher.derive(), score, metrics)
            result.history.append(trial)
            result.alphas.append(searcher.arch_probabilities())
            result.arch = trial.arch
            if path is not None:
                _save({"name": name, "seed": seed, "config": config, "searcher": searcher.state_dict(),
                       "result": result.to_dict()}, path)
            bar.update(1)
            bar.set_postfix(val=f"{score:.3f}", loss=f"{metrics.get('train_loss', float('nan')):.3f}")
            if callback is not None and main:
                callback(trial)
    finally:
        bar.close()
    result.finished = True
    if path is not None:
        _save({"name": name, "seed": seed, "config": config, "searcher": searcher.state_dict(),
               "result": result.to_dict()}, path)
    return result
