"""Evolutionary search: mutation, crossover and selection (Lecture 11, "Evolutionary Search").

Two algorithms, both as ask/tell:

1. Generational evolution with truncation selection, as once-for-all searches its supernet
   (Cai et al. 2019, `EvolutionFinder.run_evolution_search`), default settings from there:
     (1) population: `population_size` random architectures (satisfying the constraint)
     (2) parents: the best `parents` of the population (truncation selection)
     (3) children: `mutation_ratio · population_size` mutants of random parents, and
         `population_size` minus that many uniform crossovers of two random parents
     (4) the next population is the parents plus the children; repeat from (2).
   NOTE: once-for-all redraws a mutated gene from all its options, so it may not change;
   `CategoricalSpace.mutate` always changes a mutated gene, so `mutate_prob` is the real
   per-gene mutation rate. Once-for-all's default is 0.1.

2. Aging ("regularized") evolution, Real et al. 2019, Algorithm 1, with `aging=True`:
     population ← P random architectures, evaluated, in a queue
     loop: sample S members at random (with replacement); parent ← the best of the sample;
           child ← Mutate(parent); evaluate it; push it on the right; remove the oldest on the left
   NOTE: the paper's Mutate changes exactly one decision (hidden state or op); here each decision
   changes with probability `mutate_prob`, and at least one always does.

Fitness: the strategy maximises whatever score the driver tells it, e.g. accuracy alone under
hard constraints (the driver's `constraint`), or a soft trade-off F(accuracy, efficiency) such as
`edgeai.strategies.objectives.mnasnet_reward`.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Callable

from edgeai.strategies.base import Strategy

__all__ = ["Evolution", "Generation"]


@dataclass
class Generation:
    """What one generation of the population looked like (for progress plots)."""

    index: int  # 0: the random initial population
    best: float  # best score in the population after this generation
    mean: float  # mean finite score of this generation's new members
    size: int  # how many new members were evaluated


class Evolution(Strategy):
    """Evolutionary search over any `CategoricalSpace`.

    Args:
        space: the search space.
        seed: seeds every random choice.
        population_size: P, architectures per generation (once-for-all: 100).
        parents: how many of the best survive as parents (once-for-all: 25, i.e. ratio 0.25).
        mutate_prob: per-decision mutation probability (once-for-all: 0.1).
        mutation_ratio: fraction of the children made by mutation, the rest by crossover
            (once-for-all: 0.5).
        aging: use aging evolution (Real et al.) instead of truncation selection.
        sample_size: S, tournament size of aging evolution (Real et al. use P=100, S=25 on NASNet).
        constraint: optional cheap check `arch -> list of violations`; as in once-for-all,
            random architectures and children are redrawn (up to 100 times) until they satisfy it.
    """

    def __init__(
        self,
        space,
        seed: int,
        population_size: int = 100,
        parents: int = 25,
        mutate_prob: float = 0.1,
        mutation_ratio: float = 0.5,
        aging: bool = False,
        sample_size: int = 25,
        constraint: Callable[[dict], list] | None = None,
    ):
        super().__init__(space, seed)
        if population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {population_size}")
        if not 1 <= parents <= population_size:
            raise ValueError(f"parents must be between 1 and population_size={population_size}, got {parents}")
        if not 0 <= mutate_prob <= 1:
            raise ValueError(f"mutate_prob must be in [0, 1], got {mutate_prob}")
        if not 0 <= mutation_ratio <= 1:
            raise ValueError(f"mutation_ratio must be in [0, 1], got {mutation_ratio}")
        if aging and not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be between 1 and population_size={population_size}, got {sample_size}")
        self.population_size, self.parents, self.mutate_prob = population_size, parents, mutate_prob
        self.mutation_ratio, self.aging, self.sample_size = mutation_ratio, aging, sample_size
        self.constraint = constraint

        self.population: list[tuple[dict, float]] = []  # (arch, score) of the current population
        self.generations: list[Generation] = []
        self._pending: collections.deque[dict] = collections.deque()  # asked next, in order
        self._new: list[tuple[dict, float]] = []  # this generation's members told so far
        self._asked = 0  # asked in this generation
        self._queue: collections.deque[tuple[dict, float]] = collections.deque()  # aging population
        self._births = 0  # aging: architectures told so far

    # ------------------------------------------------------------------ helpers

    def _ok(self, arch) -> bool:
        return self.constraint is None or not self.constraint(arch)

    def _draw(self, make: Callable[[], dict]) -> dict:
        """Once-for-all's rejection loop: redraw until the constraint is satisfied."""
        for _ in range(100):
            arch = make()
            if self._ok(arch):
                return arch
        return arch  # give up: the driver will record it as infeasible

    def _random(self) -> dict:
        return self._draw(lambda: self.space.sample(self.rng))

    def _mutant(self, parent: dict) -> dict:
        return self._draw(lambda: self.space.mutate(parent, self.rng, self.mutate_prob))

    def _child(self, a: dict, b: dict) -> dict:
        return self._draw(lambda: self.space.crossover(a, b, self.rng))

    # ------------------------------------------------------------------ ask / tell

    def ask(self) -> dict:
        if self.aging:
            return self._ask_aging()
        if not self._pending:
            self._pending.extend(self._next_generation())
        self._asked += 1
        return self._pending.popleft()

    def ready(self, pending: int) -> int:
        """Parallel asks (see `Strategy.ready`). Truncation selection: the rest of the current
        generation, none while a finished one awaits its scores, then the whole next one. Aging
        evolution: the random initial population at once, then one child at a time (each
        tournament reads every score told before it)."""
        if self.aging:
            fill = self.population_size - self._births - pending
            if fill > 0:
                return fill
            return 1 if pending == 0 else 0
        if self._pending:
            return len(self._pending)
        return 0 if self._asked else self.population_size

    def tell(self, arch: dict, score: float) -> None:
        if self.aging:
            self._tell_aging(arch, score)
            return
        self._new.append((arch, score))
        if not self._pending and len(self._new) == self._asked:
            self._close_generation()

    # ------------------------------------------------------------------ truncation selection

    def _next_generation(self) -> list[dict]:
        if not self.population:  # (1) the initial population
            return [self._random() for _ in range(self.population_size)]
        parents = [arch for arch, _ in self.population]  # (2) already truncated in _close_generation
        n_mutants = int(round(self.mutation_ratio * self.population_size))
        children = [self._mutant(parents[self.rng.randrange(len(parents))]) for _ in range(n_mutants)]  # (3)
        for _ in range(self.population_size - n_mutants):
            a = parents[self.rng.randrange(len(parents))]
            b = parents[self.rng.randrange(len(parents))]
            children.append(self._child(a, b))
        return children

    def _close_generation(self) -> None:
        scores = [s for _, s in self._new if math.isfinite(s)]
        everyone = self.population + self._new  # (4) parents plus children
        everyone.sort(key=lambda item: item[1], reverse=True)  # stable: ties keep their age order
        self.population = everyone[: self.parents]  # (2) truncation selection for the next round
        self.generations.append(Generation(
            index=len(self.generations),
            best=self.population[0][1],
            mean=sum(scores) / len(scores) if scores else -math.inf,
            size=len(self._new),
        ))
        self._new, self._asked = [], 0

    # ------------------------------------------------------------------ aging evolution

    def _ask_aging(self) -> dict:
        if len(self._queue) < self.population_size:  # fill the initial population at random
            return self._random()
        sample = [self._queue[self.rng.randrange(len(self._queue))] for _ in range(self.sample_size)]
        parent = max(sample, key=lambda item: item[1])[0]  # the best of the tournament
        return self._mutant(parent)

    def _tell_aging(self, arch: dict, score: float) -> None:
        self._births += 1
        self._queue.append((arch, score))  # push the child on the right ...
        if len(self._queue) > self.population_size:
            self._queue.popleft()  # ... and the oldest member dies
        self.population = list(self._queue)
        self._new.append((arch, score))
        if len(self._new) == self.population_size:  # report every P births as one generation
            finite = [s for _, s in self._new if math.isfinite(s)]
            self.generations.append(Generation(
                index=len(self.generations),
                best=max(s for _, s in self._queue),
                mean=sum(finite) / len(finite) if finite else -math.inf,
                size=len(self._new),
            ))
            self._new = []
