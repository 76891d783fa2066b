"""The RL controller (Zoph & Le 2017): the REINFORCE update against autograd and by hand, the
controller's own update against autograd of the objective computed step by step, learning a
hidden target architecture, infeasible architectures, and replay/state for checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from edgeai.spaces import CategoricalSpace
from edgeai.strategies import Reinforce, ReinforceConfig, RandomSearch, SearchResult, search
from edgeai.strategies.reinforce import reinforce_gradient, reinforce_update

# A toy space with decisions of different sizes (as the NASNet cell's: inputs 2..6, ops, combiners)
# and a hidden target architecture; the reward is the fraction of decisions that match it.
SIZES = [2, 3, 5, 4, 6, 3, 4, 5]  # 2·3·5·4·6·3·4·5 = 86,400 architectures
SPACE = CategoricalSpace([(f"d{i}", tuple(f"o{j}" for j in range(k))) for i, k in enumerate(SIZES)])
TARGET = {f"d{i}": f"o{(2 * i + 1) % k}" for i, k in enumerate(SIZES)}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread (conftest.py)


def match_reward(arch):
    return sum(arch[n] == TARGET[n] for n in arch) / len(arch)


FAST = ReinforceConfig(hidden_size=32, num_layers=1, lr=0.03, batch_size=4, baseline_decay=0.9, entropy_weight=1e-3)


def test_reinforce_gradient_matches_autograd_of_the_objective():
    gen = torch.Generator().manual_seed(0)
    for k, m in [(2, 1), (5, 7), (13, 16)]:
        logits = torch.randn(k, generator=gen, dtype=torch.float64)
        actions = torch.randint(0, k, (m,), generator=gen)
        rewards = torch.rand(m, generator=gen, dtype=torch.float64)
        for beta in (0.0, 0.1):
            z = logits.clone().requires_grad_(True)
            log_p = torch.log_softmax(z, 0)
            entropy = -(log_p.exp() * log_p).sum()
            objective = ((rewards - 0.3) * log_p[actions]).mean() + beta * entropy  # J
            (expected,) = torch.autograd.grad(objective, z)
            got = reinforce_gradient(logits, actions, rewards, baseline=0.3, entropy_weight=beta)
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_reinforce_update_by_hand():
    # π = softmax(0, 0) = (1/2, 1/2); a = 0 with R − b = 1: ∇J = onehot(0) − π = (1/2, −1/2)
    new = reinforce_update(torch.zeros(2), [0], [1.0], baseline=0.0, lr=1.0)
    torch.testing.assert_close(new, torch.tensor([0.5, -0.5]))
    # a reward below the baseline pushes the taken action down; the mean of the batch is used
    new = reinforce_update(torch.zeros(2), [0, 1], [0.0, 1.0], baseline=0.5, lr=2.0)
    # (1/2)·[(−1/2)(1/2, −1/2) + (1/2)(−1/2, 1/2)] = (−1/4, 1/4), times lr 2
    torch.testing.assert_close(new, torch.tensor([-0.5, 0.5]))
    with pytest.raises(ValueError, match="actions must be option indices"):
        reinforce_gradient(torch.zeros(3), [3], [1.0], 0.0)
    with pytest.raises(ValueError, match="same length"):
        reinforce_gradient(torch.zeros(3), [0, 1], [1.0], 0.0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        reinforce_update(torch.zeros(3), [0], [1.0], 0.0, lr=0)


def _stepwise_objective(controller, archs, rewards, baseline, beta):
    """J computed independently of the controller's batched forward: one architecture at a time,
    one `step` per decision, log-probabilities and entropies summed by hand."""
    terms = []
    for actions, reward in zip(archs, rewards):
        x, state, log_p_sum, entropy_sum = controller.start.unsqueeze(0), None, 0.0, 0.0
        for t, a in enumerate(actions):
            logits, state = controller.step(t, x, state)
            log_p = torch.log_softmax(logits[0], 0)
            log_p_sum = log_p_sum + log_p[a]
            entropy_sum = entropy_sum - (log_p.exp() * log_p).sum()
            if t + 1 < len(actions):
                x = controller.embeddings[t](torch.tensor([a]))
        terms.append((reward - baseline) * log_p_sum + beta * entropy_sum)
    return torch.stack(terms).mean()


def test_controller_update_equals_autograd_of_the_reinforce_objective():
    lr, beta, decay = 0.1, 0.05, 0.8
    config = ReinforceConfig(hidden_size=8, num_layers=2, lr=lr, optimizer="sgd", batch_size=3,
                             baseline_decay=decay, entropy_weight=beta)
    strategy = Reinforce(SPACE, seed=3, config=config)
    baseline = None
    for batch in range(2):
        archs = [strategy.ask() for _ in range(3)]
        rewards = [match_reward(a) for a in archs]
        b = sum(rewards) / 3 if baseline is None else baseline  # the first batch's baseline is its mean
        before = {n: p.detach().clone() for n, p in strategy.controller.named_parameters()}
        objective = _stepwise_objective(strategy.controller, [SPACE.index(a) for a in archs], rewards, b, beta)
        grads = dict(zip(before, torch.autograd.grad(objective, list(strategy.controller.parameters()),
                                                     allow_unused=True)))
        for arch, reward in zip(archs, rewards):
            strategy.tell(arch, reward)
        assert len(strategy.updates) == batch + 1
        assert strategy.updates[-1].baseline == pytest.approx(b)
        assert strategy.updates[-1].objective == pytest.approx(float(objective.detach()), rel=1e-5)
        moved = 0
        for name, p in strategy.controller.named_parameters():
            g = grads[name] if grads[name] is not None else torch.zeros_like(p)
            torch.testing.assert_close(p.detach(), before[name] + lr * g, rtol=1e-5, atol=1e-7)  # ascent on J
            moved += int(not torch.equal(p.detach(), before[name]))
        assert moved > 5  # the update is not vacuous
        baseline = decay * b + (1 - decay) * sum(rewards) / 3  # exponential moving average
        assert strategy.baseline == pytest.approx(baseline)


def test_controller_learns_a_hidden_target_architecture():
    strategy = Reinforce(SPACE, seed=0, config=FAST)
    result = search(strategy, match_reward, budget=10_000, max_trials=400, progress=False)
    rewards = [t.score for t in result.history]
    assert result.best.score == 1.0 and result.best.arch == TARGET
    assert strategy.most_likely() == TARGET
    assert strategy.log_prob(TARGET) > math.log(0.5)  # the policy concentrates on the target
    assert sum(rewards[-50:]) / 50 > 0.9 > 0.5 > sum(rewards[:50]) / 50  # the reward curve rises
    # random search with as many evaluations finds nothing close (86,400 architectures)
    chance = search(RandomSearch(SPACE, seed=0), match_reward, budget=result.evaluations, progress=False)
    assert chance.best.score < 1.0


def test_infeasible_architectures_get_the_lowest_reward_and_are_avoided():
    space = CategoricalSpace([("a", (0, 1, 2)), ("b", (0, 1, 2))])

    def forbid_a0(arch):
        return ["a = 0 is infeasible"] if arch["a"] == 0 else []

    def reward(arch):
        return 0.5 + 0.1 * arch["b"]

    config = ReinforceConfig(hidden_size=16, num_layers=1, lr=0.05, batch_size=2, entropy_weight=0.0)
    strategy = Reinforce(space, seed=1, config=config)
    result = search(strategy, reward, budget=50, constraint=forbid_a0, max_trials=150, progress=False)
    assert result.infeasible  # the driver told -inf
    told = [r for u in strategy.updates for r in u.rewards]
    assert all(math.isfinite(r) for r in told) and min(told) >= 0.5  # replaced by the lowest seen
    with torch.no_grad():
        logits, _ = strategy.controller.step(0, strategy.controller.start.unsqueeze(0), None)
    assert torch.softmax(logits[0], 0)[0] < 0.2  # a = 0 has become unlikely

    fixed = Reinforce(space, seed=1, config=ReinforceConfig(hidden_size=16, num_layers=1, batch_size=1,
                                                            infeasible_reward=-1.0))
    fixed.tell({"a": 0, "b": 0}, -math.inf)
    assert fixed.updates[0].rewards == [-1.0]
    with pytest.raises(ValueError, match="NaN"):
        fixed.tell({"a": 1, "b": 0}, float("nan"))


class _NoRepeats(CategoricalSpace):
    """A space whose decisions constrain each other: no option may appear twice."""

    def explain_infeasible(self, arch):
        values = list(arch.values())
        return None if len(set(values)) == len(values) else f"an option appears twice in {values}"


def test_the_controller_only_proposes_architectures_of_a_constrained_space():
    space = _NoRepeats([(f"d{i}", (0, 1, 2, 3)) for i in range(3)])
    strategy = Reinforce(space, seed=0, config=FAST)
    for _ in range(40):
        arch = strategy.ask()
        assert space.feasible(arch)
        strategy.tell(arch, float(arch["d0"]))


def _history(result):
    return [(json.dumps(t.arch, sort_keys=True), t.score, t.status) for t in result.history]


def test_same_seed_same_history_and_resume_by_replay(tmp_path):
    def make():
        return Reinforce(SPACE, seed=5, config=FAST)

    # (a converged controller repeats itself: max_trials bounds the asks, as in a notebook)
    full = search(make(), match_reward, budget=60, max_trials=80, progress=False)
    assert _history(full) == _history(search(make(), match_reward, budget=60, max_trials=80, progress=False))
    other = search(Reinforce(SPACE, seed=6, config=FAST), match_reward, 60, max_trials=80, progress=False)
    assert _history(full) != _history(other)

    calls = []

    def dies_at_31(arch):
        calls.append(1)
        if len(calls) == 31:
            raise KeyboardInterrupt
        return match_reward(arch)

    ckpt = tmp_path / "rl.json"
    with pytest.raises(KeyboardInterrupt):
        search(make(), dies_at_31, budget=60, max_trials=80, checkpoint=ckpt, progress=False)
    assert SearchResult.load(ckpt).evaluations == 30
    resumed = search(make(), match_reward, budget=60, max_trials=80, checkpoint=ckpt, resume=True, progress=False)
    assert _history(resumed) == _history(full)


def test_state_dict_continues_the_same_stream(tmp_path):
    a = Reinforce(SPACE, seed=2, config=FAST)
    for _ in range(10):
        arch = a.ask()
        a.tell(arch, match_reward(arch))
    path = tmp_path / "state.pt"
    torch.save(a.state_dict(), path)
    b = Reinforce(SPACE, seed=2, config=FAST)
    b.load_state_dict(torch.load(path, weights_only=False))
    for _ in range(10):
        arch_a, arch_b = a.ask(), b.ask()
        assert arch_a == arch_b
        a.tell(arch_a, match_reward(arch_a))
        b.tell(arch_b, match_reward(arch_b))
    assert a.baseline == b.baseline
    with pytest.raises(ValueError, match="another config or seed"):
        Reinforce(SPACE, seed=3, config=FAST).load_state_dict(a.state_dict())


def test_bad_configs():
    with pytest.raises(ValueError, match="batch_size"):
        ReinforceConfig(batch_size=0)
    with pytest.raises(ValueError, match="optimizer"):
        ReinforceConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="baseline_decay"):
        ReinforceConfig(baseline_decay=1.0)
    with pytest.raises(ValueError, match="infeasible_reward"):
        ReinforceConfig(infeasible_reward=-math.inf)
    with pytest.raises(TypeError, match="ReinforceConfig"):
        Reinforce(SPACE, seed=0, config={"lr": 0.1})
