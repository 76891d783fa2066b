"""edgeai.estimation.supernet: every sub-network extracted as a stand-alone network computes
exactly what the supernet computes with that setting (the oracle: `space.build` networks and
`profile`), the kernel transformation and channel sorting follow once-for-all's definitions,
depth and width take the first blocks and channels, training learns and is seeded, a killed run
resumes to the same weights, and bad input is refused clearly. Spaces and data are tiny: these
tests check behaviour; the notebook 08 and `benchmarks/` report accuracies and timings."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import edgeai.estimation.supernet as sn
from edgeai.blocks import ClassifierHead, ConvBNAct, InvertedResidual
from edgeai.data import digits
from edgeai.efficiency import profile
from edgeai.estimation.supernet import (
    ElasticConvBNAct,
    Supernet,
    SupernetTrainConfig,
    load_supernet,
    recalibrate_bn,
    save_supernet,
    train_supernet,
)
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig

TINY = NetworkSpaceConfig.digits(stages=((8, 1), (16, 2)), depths=(1, 2), kernels=(3, 5), expand_ratios=(2, 3),
                                 widths=(0.5, 1.0), resolutions=(8, 16))
FAST = dict(threads=1, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread (conftest.py)


def _perturb(net: Supernet, seed: int = 0) -> Supernet:
    """Random BN statistics and affine parameters and non-identity kernel transformations, so an
    equality between supernet and extracted network cannot hold by accident (fresh BNs are the
    identity, fresh transformation matrices are identities)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        for name, p in net.named_parameters():
            if "transforms" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.fixture(scope="module")
def tiny_data():
    return {r: digits(r, seed=0).with_train_subset(128, seed=0) for r in TINY.resolutions}


# --------------------------------------------------------------------------------------------
# Sub-networks: the supernet with a setting == the stand-alone network
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, n", [
    (NetworkSpaceConfig.digits(), 6),  # elastic width 0.5 .. 2.0, kernels 3/5/7, resolutions 8/16/32
    (NetworkSpaceConfig.mcunet(resolutions=(32,), num_classes=10), 1),  # stride-2 stem, 6 stages
    (NetworkSpaceConfig.mobilenet_v2(resolutions=(32,), widths=(0.5, 1.0), num_classes=10), 1),  # last 1x1 conv
])
def test_extracted_network_equals_the_supernet(config, n):
    space = NetworkSpace(config)
    net = _perturb(Supernet(space))
    rng = random.Random(0)
    archs = [net.largest(), net.smallest()] + [space.sample(rng) for _ in range(n)]
    for arch in archs:
        r = arch["resolution"]
        x = torch.randn(2, config.in_channels, r, r, generator=torch.Generator().manual_seed(r))
        model = net.extract(arch)
        reference = space.build(arch)
        # the same network as NetworkSpace.build: same classes and parameter shapes, so
        # profile and the space's analytic costs apply to it
        assert [type(m) for m in model] == [type(m) for m in reference]
        assert [p.shape for p in model.parameters()] == [p.shape for p in reference.parameters()]
        measured = profile(model, space.input_shape(arch))
        assert (measured.params, measured.macs) == (space.costs(arch).params, space.costs(arch).macs)
        with torch.no_grad():
            expected, got = net(x, arch), model(x)
        assert got.shape == (2, config.num_classes)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_supernet_and_network_agree_in_training_mode_too():
    """With batch statistics (train mode) the two compute the same logits and gradients."""
    space = NetworkSpace(TINY)
    net = _perturb(Supernet(space))
    arch = space.sample(random.Random(3))
    model = net.extract(arch).train()
    net.train()
    x = torch.randn(4, 1, arch["resolution"], arch["resolution"])
    torch.testing.assert_close(model(x), net(x, arch), atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# The elastic dimensions
# --------------------------------------------------------------------------------------------


def test_kernel_transformation_is_once_for_alls():
    """OFA Section 3.2: the 5x5 kernel is the centre of the 7x7 times a 25x25 matrix, the 3x3
    the centre of that 5x5 times a 9x9 matrix, one matrix per layer shared by all channels;
    with identity matrices (the initialisation) a small kernel is just the centre."""
    layer = ElasticConvBNAct(6, 6, 7, depthwise=True, kernels=(3, 5, 7))
    w7 = layer.conv.weight.detach()  # (6, 1, 7, 7)
    torch.testing.assert_close(layer.weight(6, 6, 3), w7[:, :, 2:5, 2:5])
    torch.testing.assert_close(layer.weight(4, 4, 5), w7[:4, :, 1:6, 1:6])
    g = torch.Generator().manual_seed(0)
    m75, m53 = torch.randn(25, 25, generator=g), torch.randn(9, 9, generator=g)
    with torch.no_grad():
        layer.transforms["7to5"].copy_(m75)
        layer.transforms["5to3"].copy_(m53)
    w5 = torch.stack([(m75 @ w7[c, 0, 1:6, 1:6].reshape(25)).reshape(5, 5) for c in range(6)]).unsqueeze(1)
    w3 = torch.stack([(m53 @ w5[c, 0, 1:4, 1:4].reshape(9)).reshape(3, 3) for c in range(6)]).unsqueeze(1)
    torch.testing.assert_close(layer.weight(6, 6, 5), w5)
    torch.testing.assert_close(layer.weight(6, 6, 3), w3)
    torch.testing.assert_close(layer.weight(6, 6, 7), w7)
    assert sorted(layer.transforms) == ["5to3", "7to5"]
    with pytest.raises(ValueError, match="kernel 4"):
        layer.weight(6, 6, 4)


def test_sorting_channels_keeps_the_largest_network_and_orders_by_importance():
    space = NetworkSpace(TINY)
    net = _perturb(Supernet(space), seed=1)
    arch = net.largest()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        before = net(x, arch)
        other = net(x, space.sample(random.Random(5)))
    net.sort_channels()
    with torch.no_grad():
        torch.testing.assert_close(net(x, arch), before, atol=1e-5, rtol=1e-5)  # a permutation changes nothing
    for blocks in net.stages:
        for block in blocks:
            importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
            assert torch.all(importance[:-1] >= importance[1:])  # most important first
    with torch.no_grad():
        assert not torch.allclose(net(x, space.sample(random.Random(5))), other)  # narrower ones keep others


def test_elastic_depth_runs_the_first_blocks_only():
    space = NetworkSpace(TINY)
    net = _perturb(Supernet(space))
    arch = dict(net.largest(), **{"stage2.depth": 1})
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        before = net(x, arch)
        net.stages[1][1].project.conv.weight.mul_(3.0)  # a block the setting skips
        torch.testing.assert_close(net(x, arch), before)
        net.stages[1][0].project.conv.weight.mul_(3.0)  # the block it keeps
        assert not torch.allclose(net(x, arch), before)
    assert len(net.extract(arch)) == len(space.layout(arch)) == 6  # stem, first, 2 + 1 blocks, head


def test_elastic_width_and_expand_keep_the_first_channels():
    space = NetworkSpace(TINY)
    net = Supernet(space)
    arch = dict(net.smallest(), **{"stage1.block0.expand": 3})
    model = net.extract(arch)
    stem = model[0][0].weight  # width 0.5: make_divisible(16 · 0.5, 4) = 8 channels of 16
    assert stem.shape == (8, 1, 3, 3)
    torch.testing.assert_close(stem, net.stem.conv.weight[:8])
    block = model[2].conv  # stage 1, block 0: c_in 4 (first block at width 0.5), hidden 3 · 4 = 12
    torch.testing.assert_close(block[0][0].weight, net.stages[0][0].expand.conv.weight[:12, :4])
    torch.testing.assert_close(block[2][0].weight, net.stages[0][0].project.conv.weight[:4, :12])


def test_resolution_is_fed_as_chosen_and_checked():
    space = NetworkSpace(TINY)
    net = Supernet(space).eval()
    arch = net.smallest()
    assert net(torch.randn(1, 1, 8, 8), arch).shape == (1, 10)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        net(torch.randn(1, 1, 16, 16), arch)


# --------------------------------------------------------------------------------------------
# Evaluation without retraining
# --------------------------------------------------------------------------------------------


def test_recalibrate_bn_averages_the_calibration_batches():
    model = nn.Sequential(nn.Conv2d(1, 3, 1, bias=False), nn.BatchNorm2d(3))
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(5, 1, 4, 4, generator=g) * (i + 1) + i for i in range(3)]
    recalibrate_bn(model, xs)
    with torch.no_grad():
        outs = [model[0](x) for x in xs]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var(dim=(0, 2, 3), unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, var)
    assert model[1].momentum == 0.1 and not model.training
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(model, [])


def test_evaluate_recalibrates_and_accepts_one_dataset_or_several(tiny_data):
    space = NetworkSpace(TINY)
    net = Supernet(space)
    arch = dict(net.smallest(), resolution=16)
    acc = net.evaluate(arch, tiny_data, calibration_samples=64)
    assert 0.0 <= acc <= 1.0
    resized = net.evaluate(arch, tiny_data[8], calibration_samples=64)  # 8 px resized to 16 on the fly
    assert 0.0 <= resized <= 1.0
    with pytest.raises(ValueError, match="split"):
        net.evaluate(arch, tiny_data, split="holdout")
    wrong = {8: tiny_data[8], 16: digits(16, seed=1).with_train_subset(128, seed=0)}
    with pytest.raises(ValueError, match="same split"):
        net.evaluate(arch, wrong)
    with pytest.raises(TypeError, match="Dataset"):
        net.evaluate(arch, [tiny_data[8]])


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_sandwich_training_learns_and_is_seeded(tiny_data):
    config = SupernetTrainConfig(epochs=3, batch_size=16, lr=0.1, num_random=1, seed=0)
    torch.manual_seed(0)
    a = Supernet(NetworkSpace(TINY))
    b = Supernet(NetworkSpace(TINY))
    b.load_state_dict(a.state_dict())
    result = train_supernet(a, tiny_data, config, **FAST)
    train_supernet(b, tiny_data, config, **FAST)
    assert result.steps == 3 * (128 // 16) and result.subnets == 3 * result.steps  # largest, smallest, 1 random
    assert result.losses[-1] < result.losses[0]
    assert result.phases == ["sandwich"] * 3
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name  # same seed, same weights, bit for bit
    assert not a.training
    chance = 0.1
    assert a.evaluate(a.largest(), tiny_data, calibration_samples=128) > 3 * chance


def test_progressive_shrinking_runs_its_phases_and_sorts_channels(tiny_data, monkeypatch):
    calls = []
    monkeypatch.setattr(Supernet, "sort_channels", lambda self: calls.append(True))
    config = SupernetTrainConfig(rule="progressive", phase_epochs=(1, 1, 0, 1), batch_size=32, num_random=1)
    net = Supernet(NetworkSpace(TINY))
    result = train_supernet(net, tiny_data, config, **FAST)
    assert result.phases == ["full", "elastic kernel", "elastic expand and width"]
    assert calls == [True]  # once, before the expand ratio becomes elastic (OFA)


def test_phase_sampling_keeps_the_inelastic_dimensions_at_their_largest():
    space = NetworkSpace(TINY)
    net = Supernet(space)
    rng = random.Random(0)
    for _ in range(20):
        arch = net.sample(rng, ("resolution", "kernel"))
        assert arch["width"] == 1.0 and all(arch[f"stage{i}.depth"] == 2 for i in (1, 2))
        assert all(arch[n] == 3 for n in space.names if n.endswith(".expand"))
    kernels = {net.sample(rng, ("kernel",))["stage1.block0.kernel"] for _ in range(30)}
    assert kernels == {3, 5}
    with pytest.raises(ValueError, match="elastic dimensions"):
        net.sample(rng, ("colour",))


def test_a_killed_run_resumes_to_the_same_weights(tiny_data, tmp_path, monkeypatch):
    config = SupernetTrainConfig(epochs=2, warmup_epochs=1, batch_size=32, num_random=1, seed=3)
    torch.manual_seed(1)
    start = Supernet(NetworkSpace(TINY)).state_dict()

    def fresh():
        net = Supernet(NetworkSpace(TINY))
        net.load_state_dict(start)
        return net

    whole = fresh()
    train_supernet(whole, tiny_data, config, **FAST)

    path = tmp_path / "supernet.pt"
    real_save = sn._save_checkpoint
    saves = []

    def save_then_die(*args):
        real_save(*args)
        saves.append(True)
        if len(saves) == 2:  # killed after the first sandwich epoch (warm-up done, channels sorted)
            raise KeyboardInterrupt

    monkeypatch.setattr(sn, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(fresh(), tiny_data, config, checkpoint=path, **FAST)
    monkeypatch.setattr(sn, "_save_checkpoint", real_save)
    resumed = Supernet(NetworkSpace(TINY))  # other initial weights: everything comes from the file
    result = train_supernet(resumed, tiny_data, config, checkpoint=path, resume=True, **FAST)
    assert result.phases == ["largest", "sandwich", "sandwich"]
    for (name, x), (_, y) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(x, y), name
    other = SupernetTrainConfig(epochs=3, warmup_epochs=1, batch_size=32, num_random=1, seed=3)
    with pytest.raises(ValueError, match="another config"):
        train_supernet(Supernet(NetworkSpace(TINY)), tiny_data, other, checkpoint=path, resume=True, **FAST)


def test_save_and_load_round_trip(tmp_path):
    net = _perturb(Supernet(NetworkSpace(TINY)))
    path = save_supernet(net, tmp_path / "net.pt")
    loaded = load_supernet(path)
    assert loaded.space.config == TINY
    arch = net.space.sample(random.Random(0))
    x = torch.randn(2, 1, arch["resolution"], arch["resolution"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, arch), net(x, arch))
    torch.save({"weights": 1}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not a supernet"):
        load_supernet(tmp_path / "junk.pt")


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="NetworkSpace"):
        Supernet("digits")
    with pytest.raises(ValueError, match="expand ratio t=1"):
        Supernet(NetworkSpace(NetworkSpaceConfig.digits(expand_ratios=(1, 2))))
    with pytest.raises(ValueError, match="rule"):
        SupernetTrainConfig(rule="greedy")
    with pytest.raises(ValueError, match="batch_size"):
        SupernetTrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="phase_epochs"):
        SupernetTrainConfig(rule="progressive", phase_epochs=(1, 1))
    with pytest.raises(ValueError, match="no epoch"):
        SupernetTrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        SupernetTrainConfig(lr=0)
    net = Supernet(NetworkSpace(TINY))
    with pytest.raises(ValueError, match="stage1.depth"):
        net(torch.randn(1, 1, 8, 8), dict(net.smallest(), **{"stage1.depth": 5}))
    with pytest.raises(ValueError, match="resume"):
        train_supernet(net, digits(8), SupernetTrainConfig(), resume=True, **FAST)
    with pytest.raises(TypeError, match="SupernetTrainConfig"):
        train_supernet(net, digits(8), {"epochs": 1}, **FAST)
    assert isinstance(net.extract(net.smallest())[0], ConvBNAct)
    assert isinstance(net.extract(net.smallest())[1], InvertedResidual)
    assert isinstance(net.extract(net.smallest())[-1], ClassifierHead)
