"""A search space as an ordered list of categorical decisions (the contract of DESIGN.md).

Every concrete space of the lecture (NASNet cell, network-level, topology) is, at heart, a list
of `(name, options)` decisions; an architecture picks one option per decision and is a plain dict
that survives a JSON round trip. From that list alone, `CategoricalSpace` derives everything a
search strategy needs, so grid search, random search, evolution and the RL controller work on
every space without knowing which one it is:

    size()                  how many architectures the space holds
    sample(rng)             one architecture drawn uniformly
    grid()                  every architecture, in a fixed order (the Cartesian product)
    mutate(arch, rng, prob) each decision replaced by another option with probability `prob`
    crossover(a, b, rng)    uniform crossover: each decision taken from a or from b
    encode(arch)            a flat 0/1 vector (one-hot per decision), e.g. for predictors
    validate(arch)          the arch, or a ValueError naming the bad decision and what is allowed

A space whose decisions constrain each other (e.g. a topology path that must stay within its
resolution range) overrides `explain_infeasible` and, where it can count or sample valid
architectures directly, `size` and `sample`.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any, Iterator, Sequence

__all__ = ["CategoricalSpace", "SubSpace", "make_rng"]

Arch = dict  # name -> chosen option; JSON-serializable


def make_rng(seed_or_rng: int | random.Random | None) -> random.Random:
    """A `random.Random` from a seed (or the generator itself). There is no default seed:
    randomness always comes from the caller."""
    if isinstance(seed_or_rng, random.Random):
        return seed_or_rng
    if isinstance(seed_or_rng, bool) or not isinstance(seed_or_rng, int):
        raise TypeError(f"rng must be an integer seed or a random.Random, got {seed_or_rng!r}")
    return random.Random(seed_or_rng)


def _canonical(value: Any) -> Any:
    """Lists become tuples (recursively) so options compare equal after a JSON round trip."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


class CategoricalSpace:
    """An ordered list of categorical decisions `[(name, options), ...]`."""

    def __init__(self, decisions: Sequence[tuple[str, Sequence[Any]]]):
        if not decisions:
            raise ValueError("a search space needs at least one decision")
        seen: set[str] = set()
        self._decisions: list[tuple[str, tuple]] = []
        for item in decisions:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise TypeError(f"each decision must be a (name, options) pair, got {item!r}")
            name, options = item
            if not isinstance(name, str) or not name:
                raise TypeError(f"decision names must be non-empty strings, got {name!r}")
            if name in seen:
                raise ValueError(f"decision {name!r} appears twice")
            options = tuple(_canonical(o) for o in options)
            if not options:
                raise ValueError(f"decision {name!r} has no options")
            if len(set(map(repr, options))) != len(options):
                raise ValueError(f"decision {name!r} lists an option twice: {options}")
            try:
                json.dumps([_jsonable(o) for o in options])
            except TypeError as err:
                raise TypeError(f"options of decision {name!r} must be JSON-serializable: {err}") from None
            seen.add(name)
            self._decisions.append((name, options))
        self._index = {name: {repr(o): i for i, o in enumerate(opts)} for name, opts in self._decisions}

    # ------------------------------------------------------------------ the decisions

    def decisions(self) -> list[tuple[str, tuple]]:
        """The ordered `(name, options)` list the space is made of."""
        return list(self._decisions)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._decisions]

    def options(self, name: str) -> tuple:
        for n, opts in self._decisions:
            if n == name:
                return opts
        raise KeyError(f"no decision named {name!r}; decisions: {self.names}")

    def __len__(self) -> int:
        return len(self._decisions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} decisions, {self.size():.3g} architectures)"

    # ------------------------------------------------------------------ validity

    def explain_infeasible(self, arch: Arch) -> str | None:
        """Why a well-formed architecture is not in the space (None: it is). Spaces whose
        decisions constrain each other override this."""
        return None

    def feasible(self, arch: Arch) -> bool:
        return self.explain_infeasible(arch) is None

    def validate(self, arch: Arch) -> Arch:
        """The architecture with canonical option values, or a ValueError naming the bad
        decision and the allowed options."""
        if not isinstance(arch, dict):
            raise TypeError(f"an architecture is a dict of decisions, got {type(arch).__name__}")
        missing = [n for n in self.names if n not in arch]
        if missing:
            raise ValueError(f"architecture is missing decision(s) {missing}")
        unknown = [k for k in arch if k not in self._index]
        if unknown:
            raise ValueError(f"architecture has unknown decision(s) {unknown}; decisions are {self.names}")
        out = {}
        for name, opts in self._decisions:
            value = _canonical(arch[name])
            if repr(value) not in self._index[name]:
                raise ValueError(f"decision {name!r} = {arch[name]!r} is not allowed; options: {list(opts)}")
            out[name] = value
        reason = self.explain_infeasible(out)
        if reason:
            raise ValueError(reason)
        return out

    def __contains__(self, arch: Any) -> bool:
        try:
            self.validate(arch)
        except (TypeError, ValueError):
            return False
        return True

    # ------------------------------------------------------------------ counting and listing

    def size(self) -> int:
        """Number of architectures: the product of the option counts (for unconstrained spaces)."""
        return math.prod(len(opts) for _, opts in self._decisions)

    def grid(self) -> Iterator[Arch]:
        """Every feasible architecture, in order (the last decision varies fastest)."""
        names = self.names
        for combo in itertools.product(*(opts for _, opts in self._decisions)):
            arch = dict(zip(names, combo))
            if self.feasible(arch):
                yield arch

    # ------------------------------------------------------------------ random operators

    def sample(self, rng: random.Random) -> Arch:
        """One architecture, uniformly at random (rejection sampling if the space is constrained)."""
        rng = make_rng(rng)
        for _ in range(10_000):
            arch = {name: rng.choice(opts) for name, opts in self._decisions}
            if self.feasible(arch):
                return arch
        raise RuntimeError(f"{type(self).__name__}: no feasible architecture found in 10000 draws; override sample()")

    def mutate(self, arch: Arch, rng: random.Random, prob: float) -> Arch:
        """A mutant: each decision, with probability `prob`, takes a different option drawn
        uniformly from the others.

        NOTE: once-for-all's mutation redraws a mutated gene from all options, so it may keep
        its value; here a mutated gene always changes, so `prob` is exactly the per-decision
        mutation rate a student can measure.
        """
        rng = make_rng(rng)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mutation probability prob must be in [0, 1], got {prob}")
        arch = self.validate(arch)
        for _ in range(1000):
            child = dict(arch)
            for name, opts in self._decisions:
                if len(opts) > 1 and rng.random() < prob:
                    child[name] = rng.choice([o for o in opts if o != arch[name]])
            if self.feasible(child):
                return child
        raise RuntimeError("no feasible mutant found in 1000 tries")

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Uniform crossover: each decision is taken from parent a or parent b with equal probability."""
        rng = make_rng(rng)
        a, b = self.validate(a), self.validate(b)
        for _ in range(1000):
            child = {name: (a if rng.random() < 0.5 else b)[name] for name in self.names}
            if self.feasible(child):
                return child
        raise RuntimeError("no feasible child found in 1000 tries")

    # ------------------------------------------------------------------ encodings

    def index(self, arch: Arch) -> list[int]:
        """The option index chosen for each decision."""
        arch = self.validate(arch)
        return [self._index[name][repr(arch[name])] for name in self.names]

    def from_index(self, indices: Sequence[int]) -> Arch:
        if len(indices) != len(self._decisions):
            raise ValueError(f"expected {len(self._decisions)} indices, got {len(indices)}")
        arch = {}
        for (name, opts), i in zip(self._decisions, indices):
            if not 0 <= int(i) < len(opts):
                raise ValueError(f"index {i} out of range for decision {name!r} with {len(opts)} options")
            arch[name] = opts[int(i)]
        return self.validate(arch)

    @property
    def encoding_size(self) -> int:
        return sum(len(opts) for _, opts in self._decisions)

    def encode(self, arch: Arch) -> list[float]:
        """One-hot per decision, concatenated in decision order (length `encoding_size`)."""
        vec: list[float] = []
        for (name, opts), i in zip(self._decisions, self.index(arch)):
            one_hot = [0.0] * len(opts)
            one_hot[i] = 1.0
            vec += one_hot
        return vec

    def key(self, arch: Arch) -> str:
        """A canonical, hashable identity of an architecture (for caches and JSON files)."""
        arch = self.validate(arch)
        return json.dumps({n: _jsonable(arch[n]) for n in self.names}, separators=(",", ":"))

    def to_json(self, arch: Arch) -> dict:
        """The architecture as JSON-ready data (tuples become lists)."""
        arch = self.validate(arch)
        return {n: _jsonable(arch[n]) for n in self.names}


class SubSpace(CategoricalSpace):
    """A few decisions of a space searched with the others fixed at a base architecture, e.g.
    the lecture's width x resolution grid of one network: `SubSpace(space, base, {"width":
    (0.5, 1.0), "resolution": (8, 16)})`. `full(arch)` is the architecture of the parent space;
    `build`, `costs` and `input_shape` are the parent's, on that architecture."""

    def __init__(self, parent: CategoricalSpace, base: Arch, options: dict[str, Sequence[Any]]):
        self.parent = parent
        self.base = parent.validate(base)
        unknown = [n for n in options if n not in parent.names]
        if unknown:
            raise ValueError(f"unknown decision(s) {unknown}; the space's decisions are {parent.names}")
        for name, opts in options.items():
            for o in opts:
                parent.validate(dict(self.base, **{name: o}))  # every option must exist in the parent
        super().__init__([(n, tuple(options[n])) for n in parent.names if n in options])

    def full(self, arch: Arch) -> Arch:
        return self.parent.validate({**self.base, **self.validate(arch)})

    def build(self, arch: Arch):
        return self.parent.build(self.full(arch))

    def costs(self, arch: Arch):
        return self.parent.costs(self.full(arch))

    def input_shape(self, arch: Arch):
        return self.parent.input_shape(self.full(arch))
