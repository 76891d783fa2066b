"""ProxylessNAS (Cai et al. 2019): the expected latency and both latency losses against their
analytic gradients, the binary-gate gradient estimate (Eq. 4) against a hand computation, the
search space and its lookup table, and λ moving the derived architecture to faster operations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgeai.data import digits
from edgeai.strategies import ProxylessConfig, ProxylessSpace, proxyless_search
from edgeai.strategies.proxyless import (
    CANDIDATES,
    SKIP,
    BinaryGate,
    MixedLayer,
    ProxylessSearch,
    expected_latency,
    latency_loss,
    latency_table,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread (conftest.py)


def _random_layers(seed, sizes=(3, 7, 6)):
    gen = torch.Generator().manual_seed(seed)
    alphas = [torch.randn(k, generator=gen, dtype=torch.float64, requires_grad=True) for k in sizes]
    lats = [1 + 5 * torch.rand(k, generator=gen, dtype=torch.float64) for k in sizes]
    return alphas, lats


def test_expected_latency_and_its_gradient_match_the_analytic_formulas():
    alphas, lats = _random_layers(0)
    e = expected_latency(alphas, lats)
    p = [F.softmax(a.detach(), 0) for a in alphas]
    per_layer = [float((pl * fl).sum()) for pl, fl in zip(p, lats)]
    assert float(e.detach()) == pytest.approx(sum(per_layer))  # Σ_l Σ_i p_i F_i
    grads = torch.autograd.grad(e, alphas)
    for g, pl, fl, el in zip(grads, p, lats, per_layer):
        torch.testing.assert_close(g, pl * (fl - el))  # ∂E[lat_l]/∂α_i = p_i (F_i − E[lat_l])
    # uniform α: the plain mean of each layer's latencies
    uniform = expected_latency([torch.zeros(2), torch.zeros(4)], [torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2, 2, 6])])
    assert float(uniform) == pytest.approx(2.0 + 3.0)


def test_latency_losses_have_the_analytic_gradient():
    alphas, lats = _random_layers(1)
    ce, target = torch.tensor(0.7, dtype=torch.float64), 9.0
    p = [F.softmax(a.detach(), 0) for a in alphas]
    e = float(expected_latency(alphas, lats).detach())
    de = [pl * (fl - (pl * fl).sum()) for pl, fl in zip(p, lats)]  # ∂E[LAT]/∂α per layer

    lam = 0.3  # additive: CE + λ (E − T)/T  ->  ∂/∂α = λ/T · ∂E/∂α
    loss = latency_loss(ce, expected_latency(alphas, lats), "add", target, reg_lambda=lam)
    assert float(loss.detach()) == pytest.approx(0.7 + lam * (e - target) / target)
    for g, d in zip(torch.autograd.grad(loss, alphas), de):
        torch.testing.assert_close(g, lam / target * d)

    a_r, beta = 0.2, 0.3  # multiplicative: a_r·CE·(log E / log T)^β  ->  a_r·CE·β·(log E/log T)^(β−1)/(E log T)
    loss = latency_loss(ce, expected_latency(alphas, lats), "mul", target, reg_alpha=a_r, reg_beta=beta)
    assert float(loss.detach()) == pytest.approx(a_r * 0.7 * (math.log(e) / math.log(target)) ** beta)
    factor = a_r * 0.7 * beta * (math.log(e) / math.log(target)) ** (beta - 1) / (e * math.log(target))
    for g, d in zip(torch.autograd.grad(loss, alphas), de):
        torch.testing.assert_close(g, factor * d)

    assert latency_loss(ce, torch.tensor(5.0), "none") is ce
    with pytest.raises(ValueError, match="above 1"):
        latency_loss(ce, torch.tensor(0.5), "mul", target=0.8)
    with pytest.raises(ValueError, match="kind"):
        latency_loss(ce, torch.tensor(5.0), "max")


def test_binary_gate_gradient_is_equation_4():
    gen = torch.Generator().manual_seed(2)
    alpha = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.randn(5, generator=gen, dtype=torch.float64)  # ∂L/∂g_j for L = Σ_j c_j g_j
    gates = BinaryGate.apply(alpha, 3)
    assert gates.tolist() == [0, 0, 0, 1, 0]
    (gates * c).sum().backward()
    p = F.softmax(alpha.detach(), 0).tolist()
    by_hand = [sum(c[j].item() * p[j] * ((i == j) - p[i]) for j in range(5)) for i in range(5)]  # Eq. 4
    torch.testing.assert_close(alpha.grad, torch.tensor(by_hand, dtype=torch.float64))


def test_mixed_layer_runs_one_path_and_estimates_the_alpha_gradient_through_all():
    cfg = ProxylessConfig(stem_channels=4, stem_stride=1, first_channels=0, stages=((4, 2, 1),), feature_channels=0)
    space = ProxylessSpace(cfg, (1, 6, 6), 10)
    torch.manual_seed(0)
    layer = MixedLayer(space.layers[1], arch_init=0.5).double()
    assert layer.options[0] == SKIP and len(layer.options) == 1 + len(CANDIDATES)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    r = torch.randn(2, 4, 6, 6, dtype=torch.float64)  # L = Σ r · output, so ∂L/∂output = r
    layer.active = 2
    layer.gates = None  # weight step: only the active path runs
    torch.testing.assert_close(layer(x), layer.candidates[2](x))
    layer.gates = BinaryGate.apply(layer.alpha, 2)  # architecture step
    out = layer(x)
    torch.testing.assert_close(out, layer.candidates[2](x))
    (out * r).sum().backward()
    with torch.no_grad():
        dl_dg = torch.stack([(r * op(x)).sum() for op in layer.candidates])  # ∂L/∂g_j = ⟨∂L/∂out, o_j(x)⟩
    p = F.softmax(layer.alpha.detach(), 0)
    torch.testing.assert_close(layer.alpha.grad, p * (dl_dg - (dl_dg * p).sum()))  # Eq. 4
    assert all(q.grad is None for j, op in enumerate(layer.candidates) if j != 2 for q in op.parameters())
    assert all(q.grad is not None for q in layer.candidates[2].parameters())


TOY = ProxylessConfig(stem_channels=8, stem_stride=1, first_channels=0, stages=((8, 2, 1), (16, 1, 2)),
                      feature_channels=0, candidates=("mb3_k3", "mb6_k3", "mb6_k7"), epochs=3, warmup_epochs=1,
                      batch_size=32, lr=0.05, label_smoothing=0.0, arch_lr=0.05, arch_every=1, loss="add")


def _toy_table(space):
    """A fixed table: latency grows with the MBConv's work t·k² (µs); skip costs nothing."""
    table = {k: 10.0 for k in space.fixed_keys}
    for layer in space.layers:
        for name in layer.options:
            t, k = CANDIDATES.get(name, (0, 0))
            table[layer.key(name)] = 1.0 + t * k * k
    return table


def test_space_builds_the_derived_network_and_sums_its_table_latency():
    data_shape = (1, 8, 8)
    space = ProxylessSpace(TOY, data_shape, 10)
    assert space.names == ["layer0", "layer1", "layer2"]
    assert space.options("layer0") == (SKIP, "mb3_k3", "mb6_k3", "mb6_k7")
    assert space.options("layer2") == ("mb3_k3", "mb6_k3", "mb6_k7")  # stride 2: no residual, no skip
    arch = {"layer0": SKIP, "layer1": "mb6_k7", "layer2": "mb3_k3"}
    model = space.build(arch)
    assert [name for name, _ in model.named_children()] == ["stem", "layer1", "layer2", "head"]
    assert model(torch.randn(2, *data_shape)).shape == (2, 10)
    table = _toy_table(space)
    assert space.latency(arch, table) == 10 + 1 + (1 + 6 * 49) + (1 + 3 * 9) + 10
    measured = latency_table(space, warmup=1, repeats=3, progress=False)
    assert set(measured) == set(table) and all(v > 0 for v in measured.values())
    with pytest.raises(KeyError, match="latency table"):
        ProxylessSearch(space, {k: v for k, v in table.items() if "mb6_k7" not in k}, seed=0)


def test_raising_lambda_moves_the_derived_architecture_to_faster_operations():
    data = digits().with_train_subset(256, seed=0)
    space = ProxylessSpace(TOY, data.input_shape, data.num_classes)
    table = _toy_table(space)
    fastest = {name: min(space.options(name), key=lambda o: table[layer.key(o)])
               for name, layer in zip(space.names, space.layers)}
    latencies = []
    for lam in (0.0, 3.0):
        config = ProxylessConfig(**{**TOY.__dict__, "reg_lambda": lam})
        result = proxyless_search(data, config, seed=0, table=table, progress=False)
        assert len(result.history) == 3 and result.arch == result.history[-1].arch
        assert result.history[-1].metrics["latency"] == space.latency(result.arch, table)
        latencies.append(space.latency(result.arch, table))
        if lam:
            assert result.arch == fastest == {"layer0": SKIP, "layer1": SKIP, "layer2": "mb3_k3"}
            e = [t.metrics["expected_latency"] for t in result.history]
            assert e[0] > e[1] > e[2]  # E[LAT] falls once the α steps start (after the warm-up epoch)
    assert latencies[1] < latencies[0]


def test_the_multiplicative_loss_needs_latencies_above_one():
    space = ProxylessSpace(ProxylessConfig(**{**TOY.__dict__, "loss": "mul"}), (1, 8, 8), 10)
    table = {k: v / 1000 for k, v in _toy_table(space).items()}  # in ms: below 1
    with pytest.raises(ValueError, match="above 1"):
        ProxylessSearch(space, table, seed=0)
    ProxylessSearch(space, _toy_table(space), seed=0)  # in µs: fine


def test_bad_proxyless_configs():
    with pytest.raises(ValueError, match="candidates"):
        ProxylessConfig(candidates=("mb9_k9",))
    with pytest.raises(ValueError, match="loss"):
        ProxylessConfig(loss="max")
    with pytest.raises(ValueError, match="stages"):
        ProxylessConfig(stages=((16, 0, 1),))
    paper = ProxylessConfig()  # the official code's ImageNet search
    assert [row[0] for row in paper.stages] == [24, 40, 80, 96, 192, 320]
    assert [n for _, n, _ in paper.stages] == [4, 4, 4, 4, 4, 1]
    assert [s for _, _, s in paper.stages] == [2, 2, 2, 1, 2, 1]
    space = ProxylessSpace(paper, (3, 224, 224), 1000)
    assert len(space) == 21  # 21 searchable layers
    assert space.final_shape == (1, 320, 7, 7)
