"""DARTS (Liu et al. 2019): the mixed operation, the paper's network size, the second-order
architecture gradient against autograd of the unrolled objective, a toy task whose right
operation is known, the derivation of genotypes and the networks they build, and a search on
digits that is killed and resumed."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from edgeai.data import Split, digits
from edgeai.spaces.ops import DARTS_OPS
from edgeai.strategies import DartsConfig, Genotype, darts_search
from edgeai.strategies.darts import (
    DARTS_V1,
    DARTS_V2,
    PRIMITIVES,
    Architect,
    DartsSearch,
    MixedOp,
    Network,
    SearchNetwork,
    derive_cell,
    num_edges,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread (conftest.py)


def test_mixed_op_is_the_softmax_weighted_sum_of_its_operations():
    torch.manual_seed(0)
    op = MixedOp(4, 1).eval()
    x = torch.randn(2, 4, 8, 8)
    alpha = torch.randn(len(PRIMITIVES))
    w = F.softmax(alpha, 0)
    expected = sum(w[i] * op.ops[i](x) for i in range(len(PRIMITIVES)))
    torch.testing.assert_close(op(x, w), expected)
    skip = torch.zeros(len(PRIMITIVES))
    skip[PRIMITIVES.index("skip_connect")] = 1.0
    torch.testing.assert_close(op(x, skip), x)  # a one-hot α picks one operation
    assert PRIMITIVES == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                          "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")  # genotypes.PRIMITIVES
    reduce = MixedOp(4, 2)
    assert reduce(x, w).shape == (2, 4, 4, 4)
    # the pools carry a BN without affine parameters, as in the DARTS code
    assert isinstance(op.ops[1][1], nn.BatchNorm2d) and not op.ops[1][1].affine


def test_darts_v2_network_has_the_papers_size():
    # Liu et al. 2019, Table 1: DARTS (second order) on CIFAR-10 has 3.3M parameters; their code logs
    # "param size = 3.349342MB" for DARTS_V2 with 36 initial channels, 20 cells, auxiliary head excluded.
    model = Network(DARTS_V2, c=36, num_classes=10, layers=20)
    assert sum(p.numel() for p in model.parameters()) == 3_349_342


def test_search_network_shapes_and_parameters():
    net = SearchNetwork(4, 10, layers=3, steps=2, multiplier=2, in_channels=1)
    assert [c.reduction for c in net.cells] == [False, True, True]  # reductions at 1/3 and 2/3
    assert net.alpha_normal.shape == (num_edges(2), 8) == (5, 8)
    assert SearchNetwork(4, 10, layers=8).alpha_normal.shape == (14, 8)  # the paper's 14 edges
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    arch = {id(p) for p in net.arch_parameters()}
    assert len(arch) == 2 and all(id(p) not in arch for p in net.weights())
    assert len(net.weights()) + 2 == len(list(net.parameters()))


def _tiny_network():
    torch.manual_seed(0)
    net = SearchNetwork(2, 3, layers=3, steps=2, multiplier=2, in_channels=1).double()
    with torch.no_grad():
        for a in net.arch_parameters():
            a.normal_(0, 0.5)  # away from uniform, so every term matters
    return net


def test_second_order_gradient_equals_autograd_of_the_unrolled_objective():
    net = _tiny_network()
    gen = torch.Generator().manual_seed(1)
    x_t, x_v = (torch.randn(6, 1, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    y_t, y_v = (torch.randint(0, 3, (6,), generator=gen) for _ in range(2))
    xi, momentum, weight_decay = 0.05, 0.9, 3e-3
    w_opt = torch.optim.SGD(net.weights(), lr=xi, momentum=momentum, weight_decay=weight_decay)
    loss = lambda x, y: F.cross_entropy(net(x), y)  # noqa: E731
    w_opt.zero_grad()
    loss(x_t, y_t).backward()
    w_opt.step()  # one real step: momentum buffers are now non-zero and enter the virtual step
    architect = Architect(net, w_opt, loss)

    # r sets the finite-difference step ε = r / ‖v‖; the paper's r = 0.01 crosses ReLU and max-pool
    # kinks of a network this small, a smaller r converges to the exact value (in float64)
    _, got = architect.second_order_gradient(x_t, y_t, x_v, y_v, xi, r=1e-5)
    _, first = architect.first_order_gradient(x_v, y_v)

    # The exact gradient of L_val(w'(α), α), w'(α) = w − ξ(μ·buf + ∇_w L_train(w, α) + λ w), by autograd
    names_w = [n for n, p in net.named_parameters() if not n.startswith("alpha")]
    names_a = [n for n, p in net.named_parameters() if n.startswith("alpha")]
    params = dict(net.named_parameters())
    w = {n: params[n].detach().clone().requires_grad_(True) for n in names_w}
    a = {n: params[n].detach().clone().requires_grad_(True) for n in names_a}
    buffers = dict(net.named_buffers())
    f = lambda p, x, y: F.cross_entropy(functional_call(net, {**p, **buffers}, (x,)), y)  # noqa: E731
    g_train = torch.autograd.grad(f({**w, **a}, x_t, y_t), list(w.values()), create_graph=True)
    w_unrolled = {n: w[n] - xi * (momentum * w_opt.state[params[n]]["momentum_buffer"] + g + weight_decay * w[n])
                  for n, g in zip(names_w, g_train)}
    expected = torch.autograd.grad(f({**w_unrolled, **a}, x_v, y_v), list(a.values()))

    for g_fd, g_exact, g_first in zip(got, expected, first):
        torch.testing.assert_close(g_fd, g_exact, rtol=1e-6, atol=1e-9)  # finite-difference tolerance
        assert (g_exact - g_first).abs().max() > 1e-3  # the second-order term is not negligible here
    # the weights are restored after the virtual step and the finite differences
    for n in names_w:
        torch.testing.assert_close(params[n].detach(), w[n].detach(), rtol=0, atol=0)


class _OneEdge(nn.Module):
    """A one-edge 'network' for the toy task: its output is one MixedOp of its input."""

    def __init__(self, c):
        super().__init__()
        self.edge = MixedOp(c, 1)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(PRIMITIVES)))

    def arch_parameters(self):
        return [self.alpha]

    def weights(self):
        return list(self.edge.parameters())

    def forward(self, x):
        return self.edge(x, F.softmax(self.alpha, 0))


@pytest.mark.parametrize("order", ["first", "second"])
def test_on_a_toy_task_the_right_operation_wins(order):
    # Target: y = x. Only skip_connect can produce it: the convolutions start with a ReLU (they lose
    # the negative half), the pools average or take maxima, 'none' gives zeros.
    torch.manual_seed(0)
    model = _OneEdge(4)
    w_opt = torch.optim.SGD(model.weights(), lr=0.05, momentum=0.9)
    loss = lambda x, y: F.mse_loss(model(x), y)  # noqa: E731
    architect = Architect(model, w_opt, loss, lr=0.05, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        x_t, x_v = (torch.randn(8, 4, 6, 6, generator=gen) for _ in range(2))
        architect.step(x_t, x_t, x_v, x_v, xi=0.05, order=order)
        w_opt.zero_grad()
        loss(x_t, x_t).backward()
        w_opt.step()
    probs = F.softmax(model.alpha.detach(), 0)
    assert PRIMITIVES[int(probs.argmax())] == "skip_connect"
    assert probs[PRIMITIVES.index("skip_connect")] > 2 * probs.sort().values[-2]


def test_derive_cell_keeps_the_two_strongest_non_none_edges_per_node():
    #              none  maxp  avgp  skip  sep3  sep5  dil3  dil5
    w = torch.tensor([
        [0.90, 0.01, 0.01, 0.01, 0.04, 0.01, 0.01, 0.01],  # edge 0 (node 2 <- 0): 'none' ignored, sep3 0.04
        [0.10, 0.10, 0.10, 0.30, 0.10, 0.10, 0.10, 0.10],  # edge 1 (node 2 <- 1): skip 0.30
        [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.65],  # edge 2 (node 3 <- 0): dil5 0.65
        [0.30, 0.10, 0.10, 0.10, 0.10, 0.20, 0.10, 0.00],  # edge 3 (node 3 <- 1): sep5 0.20
        [0.00, 0.40, 0.30, 0.10, 0.10, 0.10, 0.00, 0.00],  # edge 4 (node 3 <- 2): max pool 0.40
    ])
    gene = derive_cell(w, steps=2)
    assert gene == (("skip_connect", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 0), ("max_pool_3x3", 2))
    with pytest.raises(ValueError, match="weights must be"):
        derive_cell(w, steps=3)


def test_derived_genotypes_are_plain_data_and_build_networks_that_run():
    net = SearchNetwork(4, 10, layers=3, steps=3, multiplier=3, in_channels=1)
    genotype = net.genotype()
    assert len(genotype.normal) == len(genotype.reduce) == 6 and genotype.normal_concat == (2, 3, 4)
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
    for g in (genotype, DARTS_V1, DARTS_V2):
        model = Network(g, c=4, num_classes=10, layers=3, in_channels=1, drop_path_prob=0.2)
        model.train()
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
        model.eval()
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="cannot take node 3"):
        Genotype((("skip_connect", 0), ("skip_connect", 3)), (2,), DARTS_V2.reduce, DARTS_V2.reduce_concat)
    with pytest.raises(ValueError, match="unknown operation"):
        Genotype((("conv_9x9", 0), ("skip_connect", 1)), (2,), DARTS_V2.reduce, DARTS_V2.reduce_concat)
    with pytest.raises(TypeError, match="Genotype"):
        Network(DARTS_V2.to_dict(), 4, 10, 3)


TINY = DartsConfig(init_channels=2, layers=3, steps=1, multiplier=1, epochs=2, batch_size=32, lr=0.05,
                   arch_lr=3e-3)


def test_darts_search_on_digits_is_killed_and_resumes_to_the_same_end(tmp_path):
    data = digits().with_train_subset(192, seed=0)
    full = darts_search(data, TINY, seed=0, threads=1, progress=False)
    assert [t.metrics["epoch"] for t in full.history] == [1, 2] and full.finished
    assert full.history[-1].metrics["train_loss"] < full.history[0].metrics["train_loss"]
    assert full.arch == full.history[-1].arch and len(full.alphas) == 2
    model = Network(Genotype.from_dict(full.arch), c=4, num_classes=10, layers=3, in_channels=1)
    assert model(data.val.x[:2]).shape == (2, 10)

    def dies_after_first_epoch(trial):
        raise KeyboardInterrupt

    ckpt = tmp_path / "darts.pt"
    with pytest.raises(KeyboardInterrupt):
        darts_search(data, TINY, seed=0, threads=1, progress=False, checkpoint=ckpt, callback=dies_after_first_epoch)
    resumed = darts_search(data, TINY, seed=0, threads=1, progress=False, checkpoint=ckpt, resume=True)
    assert [t.score for t in resumed.history] == [t.score for t in full.history]
    assert [t.metrics["train_loss"] for t in resumed.history] == [t.metrics["train_loss"] for t in full.history]
    assert resumed.alphas == full.alphas and resumed.arch == full.arch
    with pytest.raises(ValueError, match="another search"):
        darts_search(data, TINY, seed=1, threads=1, progress=False, checkpoint=ckpt, resume=True)


@pytest.mark.parametrize("order", ["first", "second"])
def test_compiled_search_takes_the_same_steps(order):
    """`DartsConfig(compile=...)` runs both steps through torch.compile (TorchDynamo's graph of
    the supernet; "aot_eager" also traces the backward with AOTAutograd, as inductor does, without
    inductor's code generation, which takes minutes on a small CPU). The search must be the same
    one: the same α and w after an epoch, up to float reassociation."""
    data = digits().with_train_subset(128, seed=0)
    config = dataclasses.replace(TINY, epochs=1, order=order)
    plain = DartsSearch(data.input_shape, data.num_classes, config, seed=0)
    compiled = DartsSearch(data.input_shape, data.num_classes, dataclasses.replace(config, compile="aot_eager"), seed=0)
    assert compiled.step_model is not compiled.model  # an OptimizedModule over the same parameters
    assert compiled.step_model.parameters().__next__() is compiled.model.parameters().__next__()
    w_split, a_split = Split(data.train.x[:64], data.train.y[:64]), Split(data.train.x[64:], data.train.y[64:])
    logs = [s.train_epoch(w_split, a_split) for s in (plain, compiled)]  # one thread: the module's fixture
    assert logs[0]["steps"] == logs[1]["steps"] == 2
    assert logs[1]["train_loss"] == pytest.approx(logs[0]["train_loss"], rel=1e-5)
    for p, q in zip(plain.model.parameters(), compiled.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)
    assert compiled.genotype() == plain.genotype()
    with pytest.raises(ValueError, match="DartsConfig.compile must be False, True or a torch.compile backend"):
        DartsConfig(compile="fastest")


def test_bad_darts_configs():
    with pytest.raises(ValueError, match="order"):
        DartsConfig(order="third")
    with pytest.raises(ValueError, match="multiplier"):
        DartsConfig(steps=2, multiplier=3)
    with pytest.raises(ValueError, match="primitives"):
        DartsConfig(primitives=("none",))
    with pytest.raises(ValueError, match="train_portion"):
        DartsConfig(train_portion=1.0)
    assert set(DartsConfig().primitives) == set(DARTS_OPS)
