"""Reinforcement learning: an RNN controller trained with REINFORCE (Lecture 11, "Search Strategy:
Reinforcement Learning").

Zoph & Le (2017), "Neural Architecture Search with Reinforcement Learning", model architecture
design as a sequential decision-making problem: an RNN *controller* emits the architecture one
decision at a time (each decision is a softmax over that decision's options, and the choice is
fed back as the next step's input); the child network's validation accuracy R is the reward, and
the controller's parameters θ follow the policy gradient (their Section 3.2):

    ∇θ J(θ) ≈ 1/m · Σ_k Σ_t ∇θ log P(a_t | a_(t-1):1 ; θ) · (R_k − b)

over a batch of m sampled architectures of T decisions each, with the baseline b an exponential
moving average of the previous rewards, which lowers the variance without biasing the gradient.

    strategy = Reinforce(space, seed=0, config=ReinforceConfig(lr=0.05))
    result = search(strategy, evaluate, budget=300)

The controller works on ANY `CategoricalSpace`, one categorical decision per step in the space's
decision order (for the NASNet cell: each block's two inputs, two operations and combiner), so
the same `search` driver runs it as it runs grid, random and evolutionary search.

Departures from the paper, each flagged `NOTE:` where it happens:
- an entropy bonus β · H(π) is added to the objective to keep the controller exploring
  (Pham et al. 2018, ENAS, do the same; Zoph & Le have none). β = 0 gives the paper's objective.
- the controller is a tiny network: it always lives on the CPU, where its sampling (a seeded
  `torch.Generator`) is bit-reproducible, and runs on one thread (its operations are far too
  small to share, and threads that wait for each other make it ~8x slower on a busy machine).
  The child networks' device is the `evaluate` function's business.
- infeasible architectures: the driver tells a strategy `-inf` for an architecture its
  constraint skipped. REINFORCE cannot learn from an infinite reward, so it is replaced by
  `config.infeasible_reward`, or (None, the default) by the lowest finite reward seen so far
  (when the batch is used for an update): an infeasible architecture is then never worth more
  than any feasible one, the controller learns to avoid it, and the reward stays on the scale of
  the real ones. Before any feasible reward has been seen, infeasible ones are left out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgeai.estimation.train import num_threads
from edgeai.strategies.base import Strategy

__all__ = [
    "ReinforceConfig",
    "Controller",
    "Reinforce",
    "Update",
    "reinforce_gradient",
    "reinforce_update",
]

OPTIMIZERS = ("adam", "sgd")


# --------------------------------------------------------------------------------------------
# The REINFORCE update for one categorical distribution (what notebook 05 asks students to write)
# --------------------------------------------------------------------------------------------


def _as_float_tensor(name: str, value) -> torch.Tensor:
    t = torch.as_tensor(value)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def reinforce_gradient(logits, actions, rewards, baseline: float, entropy_weight: float = 0.0) -> torch.Tensor:
    """The policy gradient of a categorical policy π = softmax(logits) (K options), analytically:

        ∇_logits J = 1/m · Σ_k (R_k − b) · (onehot(a_k) − π)          (REINFORCE, Williams 1992)
                   + β · ∇_logits H(π),   ∇_z H = −π ⊙ (log π + H)    (entropy bonus, β = entropy_weight)

    since ∂ log π_a / ∂ z_j = [a = j] − π_j. `actions` are the m sampled option indices,
    `rewards` their m rewards, `baseline` the b subtracted from each. Returns a tensor shaped like
    `logits`: the direction of steepest ascent of J = 1/m Σ_k (R_k − b) log π_(a_k) + β H(π).
    """
    logits = _as_float_tensor("logits", logits)
    if logits.dim() != 1 or logits.numel() < 1:
        raise ValueError(f"logits must be a 1-D tensor of K >= 1 option scores, got shape {tuple(logits.shape)}")
    actions = torch.as_tensor(actions, dtype=torch.long).reshape(-1)
    rewards = _as_float_tensor("rewards", rewards).to(logits.dtype).reshape(-1)
    if actions.numel() == 0 or actions.numel() != rewards.numel():
        raise ValueError(f"actions and rewards must be two non-empty lists of the same length, got "
                         f"{actions.numel()} actions and {rewards.numel()} rewards")
    k = logits.numel()
    if int(actions.min()) < 0 or int(actions.max()) >= k:
        raise ValueError(f"actions must be option indices in [0, {k - 1}], got {actions.tolist()}")
    probs = torch.softmax(logits, dim=0)  # (K,)
    onehot = nn.functional.one_hot(actions, k).to(logits.dtype)  # (m, K)
    advantage = (rewards - baseline).unsqueeze(1)  # (m, 1)
    grad = (advantage * (onehot - probs)).mean(dim=0)  # (K,)
    if entropy_weight:
        log_probs = torch.log_softmax(logits, dim=0)
        entropy = -(probs * log_probs).sum()
        grad = grad - entropy_weight * probs * (log_probs + entropy)
    return grad


def reinforce_update(logits, actions, rewards, baseline: float, lr: float, entropy_weight: float = 0.0) -> torch.Tensor:
    """One step of gradient ascent on the REINFORCE objective of a categorical policy whose
    parameters are its logits: logits + lr · ∇_logits J (see `reinforce_gradient`)."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    logits = _as_float_tensor("logits", logits)
    return logits + lr * reinforce_gradient(logits, actions, rewards, baseline, entropy_weight)


# --------------------------------------------------------------------------------------------
# The controller
# --------------------------------------------------------------------------------------------


@dataclass
class ReinforceConfig:
    """Settings of the controller and of its training. Defaults: Zoph & Le (2017), Section 4.1
    ("a two-layer LSTM with 35 hidden units on each layer ... trained with the ADAM optimizer with
    a learning rate of 0.0006"); the baseline decay and entropy weight are ENAS's (Pham et al.
    2018). Small toy problems learn much faster with a larger `lr` (e.g. 0.02-0.05)."""

    hidden_size: int = 35  # LSTM units per layer
    num_layers: int = 2  # stacked LSTM layers
    lr: float = 6e-4  # learning rate of the controller's optimizer
    optimizer: str = "adam"  # "adam" (the paper) or "sgd" (plain gradient ascent, used by the tests)
    batch_size: int = 1  # m: architectures sampled per policy-gradient update
    baseline_decay: float = 0.99  # b <- decay · b + (1 − decay) · mean reward of the batch
    entropy_weight: float = 1e-4  # β of the entropy bonus (0 = the paper's objective)
    infeasible_reward: float | None = None  # reward for a skipped (-inf) architecture; None: lowest seen

    def __post_init__(self):
        for name in ("hidden_size", "num_layers", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")
        if not self.entropy_weight >= 0:
            raise ValueError(f"entropy_weight must be >= 0, got {self.entropy_weight!r}")
        if self.infeasible_reward is not None and not math.isfinite(self.infeasible_reward):
            raise ValueError(f"infeasible_reward must be a finite number or None, got {self.infeasible_reward!r}")


class Controller(nn.Module):
    """An LSTM that emits one categorical decision per step (Zoph & Le 2017, Figure 2).

    Step t: input x_t (a learned start vector at t = 0, else the embedding of the option chosen at
    step t−1) → stacked LSTM cells → h_t → a linear head of decision t → logits over that
    decision's K_t options. Every decision has its own head and its own embedding table because
    decisions have different numbers of options (a NASNet block's input choice has 2 + b options,
    its operation choice 13). Stacked `nn.LSTMCell`s rather than one `nn.LSTM`: the controller
    runs one step at a time, and a cell step costs a fifth of an `nn.LSTM` call on a CPU.
    """

    def __init__(self, num_options: list[int], hidden_size: int, num_layers: int):
        super().__init__()
        if not num_options or any(k < 1 for k in num_options):
            raise ValueError(f"num_options must list at least one decision with >= 1 option, got {num_options}")
        self.num_options = list(num_options)
        self.start = nn.Parameter(torch.zeros(hidden_size))  # x_0
        self.cells = nn.ModuleList(nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers))
        self.embeddings = nn.ModuleList(nn.Embedding(k, hidden_size) for k in num_options[:-1])
        self.heads = nn.ModuleList(nn.Linear(hidden_size, k) for k in num_options)

    def step(self, t: int, x: torch.Tensor, state: list | None):
        """One step: x (B, H) → logits of decision t (B, K_t), and the new (h, c) of every layer."""
        new_state = []
        for layer, cell in enumerate(self.cells):
            h, c = cell(x, None if state is None else state[layer])  # (B, H), (B, H)
            new_state.append((h, c))
            x = h
        return self.heads[t](x), new_state  # (B, K_t)

    def _decode(self, choose) -> list[int]:
        x, state, actions = self.start.unsqueeze(0), None, []  # x: (1, H)
        with torch.no_grad():
            for t in range(len(self.num_options)):
                logits, state = self.step(t, x, state)  # (1, K_t)
                actions.append(choose(logits[0]))
                if t + 1 < len(self.num_options):
                    x = self.embeddings[t].weight[actions[-1]].unsqueeze(0)  # (1, H): emb(a_t)
        return actions

    def sample(self, generator: torch.Generator) -> list[int]:
        """One architecture as option indices, each drawn from the controller's softmax."""
        return self._decode(lambda logits: int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator)))

    def greedy(self) -> list[int]:
        """The most likely option at every step (feeding back each argmax)."""
        return self._decode(lambda logits: int(logits.argmax()))

    def forward(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: the log-probability of each whole sequence of actions and the summed
        entropy of its step distributions, for a batch `actions` (m, T) of option indices."""
        m, steps = actions.shape
        x, state = self.start.expand(m, -1), None  # x_0: (m, H)
        log_prob = torch.zeros(m)
        entropy = torch.zeros(m)
        for t in range(steps):
            logits, state = self.step(t, x, state)  # (m, K_t)
            log_p = torch.log_softmax(logits, dim=1)  # (m, K_t)
            log_prob = log_prob + log_p.gather(1, actions[:, t : t + 1]).squeeze(1)  # log P(a_t | a_<t)
            entropy = entropy - (log_p.exp() * log_p).sum(dim=1)  # H of step t
            if t + 1 < steps:
                x = self.embeddings[t](actions[:, t])  # x_(t+1) = emb(a_t): (m, H)
        return log_prob, entropy  # (m,), (m,)


@dataclass
class Update:
    """One policy-gradient update of the controller (for reward curves)."""

    step: int  # how many updates came before
    rewards: list[float]  # the m rewards of the batch (infeasible ones already replaced)
    baseline: float  # b used for this batch (before it was updated with these rewards)
    entropy: float  # mean summed entropy of the batch's decisions (nats)
    objective: float  # J of the batch (the surrogate whose gradient was followed)


class Reinforce(Strategy):
    """REINFORCE with an LSTM controller over any `CategoricalSpace` (Zoph & Le 2017).

    ask(): sample an architecture from the controller (one decision per step, in the space's
    decision order). tell(arch, score): record its reward; every `batch_size` tells, one update
    of θ along (1/m) Σ_k (R_k − b) ∇ log P(arch_k) + β ∇ H, then b ← decay·b + (1−decay)·mean R.

    Deterministic given the seed and the told scores (the driver's checkpoint/resume replays
    them): the controller's weights are initialised from `seed`, its sampling uses a
    `torch.Generator` seeded from `seed`, and it runs on the CPU.

    The first batch has no previous reward to average: b starts at that batch's mean reward.
    """

    def __init__(self, space, seed: int, config: ReinforceConfig | None = None):
        super().__init__(space, seed)
        self.config = ReinforceConfig() if config is None else config
        if not isinstance(self.config, ReinforceConfig):
            raise TypeError(f"config must be a ReinforceConfig, got {type(self.config).__name__}")
        num_options = [len(options) for _, options in space.decisions()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.controller = Controller(num_options, self.config.hidden_size, self.config.num_layers)
        params = self.controller.parameters()
        if self.config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
        else:
            self.optimizer = torch.optim.SGD(params, lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.lowest_reward: float | None = None  # the lowest finite reward told so far
        self.updates: list[Update] = []
        self._batch: list[tuple[list[int], float | None]] = []  # (option indices, reward or None: infeasible)

    # ------------------------------------------------------------------ ask / tell

    def ask(self) -> dict:
        """A sampled architecture. In a space whose decisions constrain each other, a sample that
        breaks the space's rules is drawn again (rejection sampling, as `CategoricalSpace.sample`)."""
        decisions = self.space.decisions()
        with num_threads(1):
            for _ in range(1000):
                indices = self.controller.sample(self.generator)
                arch = {name: options[i] for (name, options), i in zip(decisions, indices)}
                if self.space.feasible(arch):
                    return self.space.validate(arch)
        raise RuntimeError(f"the controller drew 1000 architectures that break the rules of {self.space!r}, "
                           f"the last: {self.space.explain_infeasible(arch)}")

    def ready(self, pending: int) -> int:
        """Parallel asks (see `Strategy.ready`): the rest of the batch of m = `batch_size`
        samples, all drawn from the same policy (θ changes only when the batch is complete)."""
        return max(self.config.batch_size - len(self._batch) - pending, 0)

    def tell(self, arch: dict, score: float) -> None:
        """Record the reward of `arch` (normally the one `ask` just returned; any architecture of
        the space is accepted, though REINFORCE assumes it was sampled from the current policy)."""
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"score of {arch} is NaN; REINFORCE needs a number (or -inf for infeasible)")
        if math.isfinite(score):
            self.lowest_reward = score if self.lowest_reward is None else min(self.lowest_reward, score)
            reward = score
        elif score < 0:  # -inf: skipped as infeasible by the driver; its reward is set at the update
            reward = None
        else:
            raise ValueError(f"score of {arch} is +inf; a reward must be finite (or -inf for infeasible)")
        self._batch.append((self.space.index(arch), reward))
        if len(self._batch) == self.config.batch_size:
            with num_threads(1):
                self._update()

    # ------------------------------------------------------------------ the policy gradient

    def objective(self, actions: torch.Tensor, rewards: torch.Tensor, baseline: float) -> tuple[torch.Tensor, torch.Tensor]:
        """J = 1/m Σ_k (R_k − b) log P(a_k) + β · 1/m Σ_k H_k, and the mean entropy."""
        log_prob, entropy = self.controller(actions)  # (m,), (m,)
        advantage = rewards - baseline  # (m,): a constant, no gradient flows through R or b
        objective = (advantage * log_prob).mean() + self.config.entropy_weight * entropy.mean()
        return objective, entropy.mean()

    def _update(self) -> None:
        batch = self._batch
        self._batch = []
        infeasible = self.config.infeasible_reward
        if infeasible is None:
            infeasible = self.lowest_reward  # the lowest finite reward told so far, this batch included
        if infeasible is None:  # nothing feasible seen yet: no scale to put these rewards on
            batch = [(a, r) for a, r in batch if r is not None]
            if not batch:
                return
        actions = torch.tensor([a for a, _ in batch], dtype=torch.long)  # (m, T)
        rewards = torch.tensor([infeasible if r is None else r for _, r in batch], dtype=torch.float32)  # (m,)
        mean_reward = float(rewards.mean())
        baseline = mean_reward if self.baseline is None else self.baseline
        objective, entropy = self.objective(actions, rewards, baseline)
        self.optimizer.zero_grad(set_to_none=True)
        (-objective).backward()  # gradient ascent on J = descent on −J
        self.optimizer.step()
        d = self.config.baseline_decay
        self.baseline = d * baseline + (1 - d) * mean_reward
        self.updates.append(Update(len(self.updates), rewards.tolist(), baseline, float(entropy.detach()), float(objective.detach())))

    # ------------------------------------------------------------------ reading the policy

    def most_likely(self) -> dict:
        """The architecture the controller now prefers (greedy decoding)."""
        with num_threads(1):
            return self.space.from_index(self.controller.greedy())

    def log_prob(self, arch: dict) -> float:
        """log P(arch) under the current controller."""
        with torch.no_grad(), num_threads(1):
            log_prob, _ = self.controller(torch.tensor([self.space.index(arch)], dtype=torch.long))
        return float(log_prob[0])

    # ------------------------------------------------------------------ state (for checkpoints)

    def state_dict(self) -> dict:
        """Everything the strategy learned and where its random stream stands."""
        return {
            "config": asdict(self.config),
            "seed": self.seed,
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "lowest_reward": self.lowest_reward,
            "updates": [asdict(u) for u in self.updates],
            "batch": [list(item) for item in self._batch],
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != asdict(self.config) or state["seed"] != self.seed:
            raise ValueError("state was saved by a Reinforce with another config or seed")
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline, self.lowest_reward = state["baseline"], state["lowest_reward"]
        self.updates = [Update(**u) for u in state["updates"]]
        self._batch = [(list(a), None if r is None else float(r)) for a, r in state["batch"]]
