"""edgeai.blocks against oracles: `profile` on the real modules (every analytic cost must equal
what it measures: params, MACs and, where modelled, peak activations), the papers' own cost
formulas, naive re-implementations (channel shuffle as an explicit permutation, relative
attention logits as a loop), torch.nn.MultiheadAttention, and weight copies between the
equivalent ResNeXt forms."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch
from torch import nn

from edgeai import blocks as B
from edgeai.efficiency import conv_macs, profile


def check_cost(module: nn.Module, shape: tuple, cost: B.Cost) -> None:
    """The analytic cost equals profile's measurement, and out_shape the real output's shape."""
    p = profile(module, (1, *shape))
    assert cost.params == p.params == sum(t.numel() for t in module.parameters())
    assert cost.macs == p.macs
    if cost.peak_activations is not None:
        assert cost.peak_activations == p.peak_activations
    with torch.no_grad():
        y = module.eval()(torch.randn(1, *shape))
    assert tuple(y.shape[1:]) == cost.out_shape


# ------------------------------------------------------------------ analytic cost == profile


@pytest.mark.parametrize("seed", range(12))
def test_inverted_residual_cost_is_exact(seed):
    rng = random.Random(seed)
    c_in = rng.choice([8, 16, 24])
    c_out = c_in if rng.random() < 0.5 else rng.choice([8, 16, 32])
    t, k, s = rng.choice([1, 3, 4, 6]), rng.choice([3, 5, 7]), rng.choice([1, 2])
    h, w = rng.randint(5, 14), rng.randint(5, 14)
    block = B.InvertedResidual(c_in, c_out, stride=s, expand_ratio=t, kernel_size=k)
    cost = B.inverted_residual_cost(c_in, c_out, t, k, s, h, w)
    assert cost == block.cost(h, w)
    check_cost(block, (c_in, h, w), cost)


@pytest.mark.parametrize("seed", range(6))
def test_bottleneck_and_resnext_costs_are_exact(seed):
    rng = random.Random(10 + seed)
    c_in, s = rng.choice([16, 32, 64]), rng.choice([1, 2])
    c_out = c_in if rng.random() < 0.5 else 2 * c_in
    h, w = rng.randint(4, 10), rng.randint(4, 10)
    check_cost(B.Bottleneck(c_in, c_out // 4, c_out, s), (c_in, h, w), B.bottleneck_cost(c_in, c_out // 4, c_out, s, h, w))
    card, d = rng.choice([2, 4, 8]), rng.choice([2, 4])
    block = B.ResNeXtBlock(c_in, c_out, card, d, s)
    cost = B.resnext_block_cost(c_in, c_out, card, d, s, h, w)
    check_cost(block, (c_in, h, w), cost)
    for form in (B.ResNeXtAggregated, B.ResNeXtEarlyConcat):  # same params and MACs in every form
        other = form.from_grouped(block)
        assert other.cost(h, w).peak_activations is None
        check_cost(other, (c_in, h, w), other.cost(h, w))
        assert (other.cost(h, w).params, other.cost(h, w).macs) == (cost.params, cost.macs)


@pytest.mark.parametrize("seed", range(6))
def test_mobilenet_shufflenet_nasnet_block_costs_are_exact(seed):
    rng = random.Random(20 + seed)
    c, s, k = rng.choice([8, 16, 24]), rng.choice([1, 2]), rng.choice([3, 5])
    h, w = rng.randint(5, 12), rng.randint(5, 12)
    c_out = rng.choice([8, 16, 32])
    check_cost(B.DepthwiseSeparable(c, c_out, s, k), (c, h, w), B.depthwise_separable_cost(c, c_out, k, s, h, w))
    affine = rng.random() < 0.5
    check_cost(B.SepConv(c, c_out, k, s, affine), (c, h, w), B.sep_conv_cost(c, c_out, k, s, h, w, affine))
    g = rng.choice([1, 2, 4])
    check_cost(B.ConvBNAct(c, c_out, k, s, g), (c, h, w), B.conv_bn_act_cost(c, c_out, k, s, h, w, g))
    g = rng.choice([2, 3, 4])
    c_unit = 4 * g * rng.randint(1, 3)
    check_cost(B.ShuffleUnit(c_unit, c_unit, g, 1), (c_unit, h, w), B.shuffle_unit_cost(c_unit, c_unit, g, 1, h, w))
    c_small = g * rng.randint(1, 3)
    grouped_first = rng.random() < 0.5
    unit = B.ShuffleUnit(c_small, c_unit + 4 * g, g, 2, grouped_first)
    check_cost(unit, (c_small, h, w), B.shuffle_unit_cost(c_small, c_unit + 4 * g, g, 2, h, w, grouped_first))
    check_cost(B.ClassifierHead(c, 10, 0.2), (c, h, w), B.classifier_head_cost(c, h, w, 10))


@pytest.mark.parametrize("heads,h,w,stride", [(4, 6, 8, 1), (2, 4, 4, 2), (1, 5, 3, 1)])
def test_attention_costs_are_exact(heads, h, w, stride):
    c_in, c_mid = 32, 16
    c_out = c_in if stride == 1 else 2 * c_in
    block = B.BoTBlock(c_in, c_mid, c_out, (h, w), heads, stride)
    check_cost(block, (c_in, h, w), B.bot_block_cost(c_in, c_mid, c_out, heads, stride, h, w))
    attn = B.RelativeSelfAttention2d(c_mid, (h, w), heads)
    check_cost(attn, (c_mid, h, w), B.relative_self_attention_cost(c_mid, heads, h, w))
    for bias in (True, False):
        mhsa = B.MultiHeadSelfAttention(c_mid, heads, bias)
        check_cost(mhsa, (h * w, c_mid), B.mhsa_cost(c_mid, heads, h * w, bias))


# ------------------------------------------------------------------ ResNet bottleneck


def test_bottleneck_8_5x_reduction_of_the_lecture():
    # Lecture, "ResNet50: Bottleneck Block": at 2048 channels the three convolutions cost
    # 2048·512·HW + 512·9·512·HW + 512·2048·HW = 512·512·17·HW MACs, one 3x3 conv at 2048 channels
    # 2048·9·2048·HW = 512·512·144·HW: 144/17 ≈ 8.5x more.
    h = w = 7
    bottleneck = B.bottleneck_cost(2048, 512, 2048, 1, h, w)
    single = conv_macs(2048, 2048, 3, 3, h, w)
    assert bottleneck.macs == 512 * 512 * 17 * h * w
    assert single == 512 * 512 * 144 * h * w
    assert round(single / bottleneck.macs, 1) == 8.5
    assert profile(B.Bottleneck(2048, 512, 2048), (1, 2048, h, w)).macs == bottleneck.macs


def test_bottleneck_costs_of_the_shufflenet_paper():
    # Zhang et al. 2018, Sec. 3.2: for c input channels, bottleneck m and an h x w map (stride 1),
    # a ResNet unit costs hw(2cm + 9m²) FLOPs, a ResNeXt unit hw(2cm + 9m²/g), a ShuffleNet unit
    # hw(2cm/g + 9m) (their FLOPs are multiply-adds).
    c, h, w, g = 96, 9, 7, 3
    m = c // 4
    assert B.bottleneck_cost(c, m, c, 1, h, w).macs == h * w * (2 * c * m + 9 * m * m)
    assert B.bottleneck_cost(c, m, c, 1, h, w, g=g).macs == h * w * (2 * c * m + 9 * m * m // g)
    assert B.shuffle_unit_cost(c, c, g, 1, h, w).macs == h * w * (2 * c * m // g + 9 * m)
    assert profile(B.ShuffleUnit(c, c, g), (1, c, h, w)).macs == h * w * (2 * c * m // g + 9 * m)


def test_shortcut_is_identity_or_projection():
    x = torch.randn(2, 64, 8, 8)
    same = B.Bottleneck(64, 16, 64).eval()
    assert isinstance(same.shortcut, nn.Identity)
    with torch.no_grad():  # a zero last BN scale makes the block ReLU(x): the residual path is x
        same.bn3.weight.zero_()
        same.bn3.bias.zero_()
        assert torch.equal(same(x), torch.relu(x))
    for block in (B.Bottleneck(64, 16, 128), B.Bottleneck(64, 16, 64, stride=2)):
        assert isinstance(block.shortcut, nn.Sequential)
        assert tuple(block(x).shape) == (2, block.out_channels, 8 // block.stride, 8 // block.stride)


# ------------------------------------------------------------------ ResNeXt: three equal forms


@pytest.mark.parametrize("stride,c_out", [(1, 64), (2, 128)])
def test_resnext_three_forms_compute_the_same_function(stride, c_out):
    torch.manual_seed(0)
    grouped = B.ResNeXtBlock(64, c_out, cardinality=8, bottleneck_width=4, stride=stride)
    with torch.no_grad():  # non-trivial BN statistics, so that a wrong channel order shows
        for m in grouped.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    aggregated = B.ResNeXtAggregated.from_grouped(grouped)
    concat = B.ResNeXtEarlyConcat.from_grouped(grouped)
    assert len(aggregated.paths) == len(concat.paths) == 8
    x = torch.randn(2, 64, 10, 10)
    with torch.no_grad():
        for mode in ("eval", "train"):  # train: BN on batch statistics, per channel, agrees too
            for m in (grouped, aggregated, concat):
                m.train(mode == "train")
            y = grouped(x)
            assert y.abs().max() > 0.1
            torch.testing.assert_close(aggregated(x), y, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(concat(x), y, rtol=1e-5, atol=1e-5)
    other = B.ResNeXtBlock(64, c_out, cardinality=8, bottleneck_width=4, stride=stride).eval()
    assert not torch.allclose(other(x), grouped.eval()(x), atol=1e-3)  # the copy is what makes them equal


def test_resnext_block_has_the_params_of_the_resnet_bottleneck():
    # Xie et al. 2017, Sec. 3.3: the template of conv2 with C = 32, d = 4 has
    # C·(256·d + 3·3·d·d + d·256) ≈ 70k weights, like ResNet's bottleneck with width 64
    # (256·64 + 3·3·64·64 + 64·256 ≈ 70k).
    resnext = B.ResNeXtBlock(256, 256, cardinality=32, bottleneck_width=4)
    resnet = B.Bottleneck(256, 64, 256)
    weights = lambda m: sum(p.numel() for p in m.parameters() if p.dim() == 4)  # noqa: E731
    assert weights(resnext) == 32 * (256 * 4 + 9 * 4 * 4 + 4 * 256) == 70144
    assert weights(resnet) == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69632
    # the grouped 3x3 has 1/C of a dense 3x3's weights at the same width
    assert resnext.conv2.weight.numel() * 32 == nn.Conv2d(128, 128, 3).weight.numel()


# ------------------------------------------------------------------ MobileNet blocks


@pytest.mark.parametrize("c_in,c_out,k", [(32, 64, 3), (128, 128, 3), (512, 1024, 3), (16, 40, 5)])
def test_depthwise_separable_reduction_of_the_mobilenet_paper(c_in, c_out, k):
    # Howard et al. 2017, Eq. (5): depthwise separable / normal conv = 1/c_o + 1/k²
    h = w = 14
    separable = B.depthwise_separable_cost(c_in, c_out, k, 1, h, w).macs
    normal = conv_macs(c_in, c_out, k, k, h, w)
    assert Fraction(separable, normal) == Fraction(1, c_out) + Fraction(1, k * k)


def test_inverted_residual_cost_of_the_mobilenet_v2_paper():
    # Sandler et al. 2018, Sec. 3.3: a block of size h x w, expansion t, kernel k, d' input and
    # d'' output channels costs h·w·d'·t·(d' + k² + d'') multiply-adds (stride 1).
    h, w, d1, d2, t, k = 14, 14, 64, 96, 6, 3
    assert B.inverted_residual_cost(d1, d2, t, k, 1, h, w).macs == h * w * d1 * t * (d1 + k * k + d2)


def test_inverted_residual_structure():
    x = torch.randn(2, 16, 8, 8)
    assert B.InvertedResidual(16, 16, 1, 6).use_residual
    assert not B.InvertedResidual(16, 16, 2, 6).use_residual
    assert not B.InvertedResidual(16, 24, 1, 6).use_residual
    assert len(B.InvertedResidual(16, 16, 1, 1).conv) == 2  # t = 1: no expansion conv
    block = B.InvertedResidual(16, 16, 1, 6).eval()
    assert block.conv[0][0].out_channels == 96 and block.conv[1][0].groups == 96
    assert isinstance(block.conv[2][2], nn.Identity)  # linear bottleneck: no activation
    with torch.no_grad():
        assert torch.allclose(block(x) - block.conv(x), x)


def test_inverted_bottleneck_peak_is_the_expanded_activation():
    # profile's rule (its docstring): at stride 1 the block peaks at its depthwise conv, holding
    # the block input (kept for the residual) and two expanded maps: A + 2·t·A.
    c, h, w, t = 16, 14, 14, 6
    a = c * h * w
    p = profile(B.InvertedResidual(c, c, 1, t), (1, c, h, w))
    assert p.peak_activations == B.inverted_residual_cost(c, c, t, 3, 1, h, w).peak_activations == a + 2 * t * a
    assert p.peak_layer == "conv.1.0"  # the depthwise convolution
    # the ResNet-style bottleneck at the same input and output holds far less
    assert p.peak_activations > 3 * profile(B.Bottleneck(c, c // 4, c), (1, c, h, w)).peak_activations


# ------------------------------------------------------------------ ShuffleNet


@pytest.mark.parametrize("c,g", [(6, 3), (12, 3), (12, 4), (8, 2), (5, 5), (7, 1)])
def test_channel_shuffle_is_the_papers_permutation(c, g):
    # Zhang et al. Fig. 1(c): reshape channels to (g, n), transpose, flatten: output channel j
    # comes from input channel (j mod g)·n + j div g.
    n = c // g
    x = torch.randn(2, c, 3, 4)
    y = B.channel_shuffle(x, g)
    expected = torch.stack([x[:, (j % g) * n + j // g] for j in range(c)], dim=1)
    assert torch.equal(y, expected)
    assert torch.equal(B.channel_shuffle(y, n), x)  # shuffling with n groups undoes it


def test_channel_shuffle_mixes_groups():
    x = torch.arange(12.0).view(1, 12, 1, 1)
    y = B.channel_shuffle(x, 3).flatten().tolist()
    assert y == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    # each group of the next 1x1 group conv (4 consecutive channels) sees all 3 input groups
    assert all({int(v) // 4 for v in y[i:i + 4]} == {0, 1, 2} for i in (0, 4, 8))


def test_shuffle_unit_structure():
    unit = B.ShuffleUnit(240, 240, groups=3)
    assert unit.gconv1.groups == 3 and unit.gconv2.groups == 3 and unit.dwconv.groups == 60
    down = B.ShuffleUnit(24, 240, groups=3, stride=2, grouped_first=False)
    assert down.gconv1.groups == 1 and down.gconv2.out_channels == 240 - 24
    x = torch.rand(1, 24, 56, 56)
    with torch.no_grad():
        y = down.eval()(x)
    assert tuple(y.shape) == (1, 240, 28, 28)
    pooled = nn.functional.avg_pool2d(x, 3, 2, 1)
    assert torch.allclose(y[:, :24], torch.relu(pooled))  # the shortcut half: ReLU(avg-pool(x))


# ------------------------------------------------------------------ attention


@pytest.mark.parametrize("bias", [True, False])
def test_mhsa_equals_torch_multihead_attention(bias):
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(48, 6, bias=bias, batch_first=True)
    if bias:
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    ours = B.MultiHeadSelfAttention.from_torch(mha)
    x = torch.randn(3, 11, 48)
    expected = mha(x, x, x, need_weights=True)[0]  # the general path
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    mha.eval()
    with torch.no_grad():  # the fused inference fast path
        torch.testing.assert_close(ours(x), mha(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)
    back = ours.to_torch()
    torch.testing.assert_close(back(x, x, x)[0], expected, rtol=1e-5, atol=1e-5)
    other = B.MultiHeadSelfAttention(48, 6, bias)
    assert not torch.allclose(other(x), expected, atol=1e-3)


class _SelfAttention(nn.Module):
    def __init__(self, mha: nn.MultiheadAttention, need_weights: bool):
        super().__init__()
        self.mha, self.need_weights = mha, need_weights

    def forward(self, x):
        return self.mha(x, x, x, need_weights=self.need_weights)[0]


@pytest.mark.parametrize("seq_len,d_model,heads", [(10, 32, 4), (49, 64, 8), (7, 24, 1)])
def test_profile_counts_attention_macs_on_every_code_path(seq_len, d_model, heads):
    # 4·L·d² for the Q, K, V and output projections, 2·L²·d for Q Kᵀ and softmax(·) V
    expected = 4 * seq_len * d_model ** 2 + 2 * seq_len ** 2 * d_model
    mha = nn.MultiheadAttention(d_model, heads, batch_first=True)
    shape = (1, seq_len, d_model)
    assert profile(_SelfAttention(mha, need_weights=False), shape).macs == expected  # fused fast path
    assert profile(_SelfAttention(mha, need_weights=True), shape).macs == expected  # matmul path
    assert profile(B.MultiHeadSelfAttention(d_model, heads), shape).macs == expected  # the lecture's equations
    assert B.mhsa_cost(d_model, heads, seq_len).macs == expected


def test_relative_attention_logits_match_their_definition():
    # logits(p, p') = q_p·k_p' + q_p·r^h[i'-i] + q_p·r^w[j'-j], computed naively, position by position
    torch.manual_seed(2)
    c, heads, h, w = 8, 2, 3, 4
    attn = B.RelativeSelfAttention2d(c, (h, w), heads).eval()
    x = torch.randn(1, c, h, w)
    d = c // heads
    with torch.no_grad():
        q = attn.w_q(x)[0].view(heads, d, h, w) * d ** -0.5
        k = attn.w_k(x)[0].view(heads, d, h, w)
        v = attn.w_v(x)[0].view(heads, d, h, w)
        out = torch.zeros(heads, d, h, w)
        for n in range(heads):
            for i in range(h):
                for j in range(w):
                    logits = torch.zeros(h, w)
                    for i2 in range(h):
                        for j2 in range(w):
                            qp = q[n, :, i, j]
                            logits[i2, j2] = (qp @ k[n, :, i2, j2] + qp @ attn.rel_height[i2 - i + h - 1]
                                              + qp @ attn.rel_width[j2 - j + w - 1])
                    weights = logits.flatten().softmax(0).view(h, w)
                    out[n, :, i, j] = (v[n] * weights).sum(dim=(1, 2))
        torch.testing.assert_close(attn(x)[0], out.reshape(c, h, w), rtol=1e-5, atol=1e-5)


def test_bot_block_against_the_bottleneck_at_the_same_shape():
    # Srinivas et al.: the BoT block replaces the 3x3 conv of a c5 bottleneck (2048 -> 512 -> 2048 at
    # 14x14 for 1024x1024 detection inputs; 7x7 here) with 4-head self-attention.
    h = w = 7
    bot = B.BoTBlock(2048, 512, 2048, (h, w), heads=4)
    conv = B.Bottleneck(2048, 512, 2048)
    bot_cost, conv_cost = bot.cost(h, w), conv.cost(h, w)
    # params: 3·512² for W_Q, W_K, W_V plus (13 + 13)·128 relative embeddings instead of 9·512²
    assert conv_cost.params - bot_cost.params == 9 * 512 * 512 - 3 * 512 * 512 - 26 * 128
    # MACs: the attention terms 2·L²·c + L·(h + w)·c replace 6·L·c² of the convolution
    L = h * w
    assert conv_cost.macs - bot_cost.macs == 9 * L * 512 * 512 - 3 * L * 512 * 512 - 2 * L * L * 512 - L * 14 * 512
    x = torch.randn(1, 2048, h, w)
    with torch.no_grad():
        assert bot.eval()(x).shape == conv.eval()(x).shape == (1, 2048, h, w)


# ------------------------------------------------------------------ the Cost record and bad input


def test_cost_then_chains_blocks():
    a = B.Cost(10, 100, (4, 8, 8), 50)
    b = B.Cost(5, 30, (8, 4, 4), 70)
    assert a.then(b) == B.Cost(15, 130, (8, 4, 4), 70)
    assert a.then(B.Cost(1, 1, (2,), None)).peak_activations is None


@pytest.mark.parametrize(
    "make,error,words",
    [
        (lambda: B.Bottleneck(64, 16, 64, stride=3), ValueError, "stride"),
        (lambda: B.ResNeXtBlock(64, 64, cardinality=0), ValueError, "cardinality"),
        (lambda: B.ConvBNAct(30, 64, 3, groups=4), ValueError, "groups=4 does not divide in_channels=30"),
        (lambda: B.ConvBNAct(32, 64, 4), ValueError, "kernel_size"),
        (lambda: B.ConvBNAct(32, 64, 3, activation="gelu"), ValueError, "activation"),
        (lambda: B.DepthwiseSeparable(32.0, 64), TypeError, "in_channels"),
        (lambda: B.InvertedResidual(16, 16, 1, expand_ratio=0), ValueError, "expand_ratio"),
        (lambda: B.ShuffleUnit(24, 240, groups=3, stride=1), ValueError, "in_channels=24 must equal out_channels=240"),
        (lambda: B.ShuffleUnit(240, 240, groups=7), ValueError, "groups=7"),
        (lambda: B.ShuffleUnit(24, 242, groups=1, stride=2), ValueError, "multiple of 4"),
        (lambda: B.MultiHeadSelfAttention(30, 4), ValueError, "num_heads=4 does not divide d_model=30"),
        (lambda: B.RelativeSelfAttention2d(32, 7), TypeError, "fmap_size"),
        (lambda: B.BoTBlock(64, 32, 128, (7, 7), stride=2), ValueError, "even"),
        (lambda: B.channel_shuffle(torch.zeros(1, 10, 2, 2), 3), ValueError, "groups=3 does not divide channels=10"),
        (lambda: B.channel_shuffle(torch.zeros(10, 2, 2), 2), TypeError, "4-d"),
        (lambda: B.MultiHeadSelfAttention.from_torch(nn.Linear(3, 3)), TypeError, "MultiheadAttention"),
        (lambda: B.ResNeXtAggregated.from_grouped(B.Bottleneck(8, 4, 8)), TypeError, "ResNeXtBlock"),
        (lambda: B.inverted_residual_cost(16, 16, 6, 3, 1, 0, 8), ValueError, "h"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_attention_refuses_a_feature_map_of_another_size():
    attn = B.RelativeSelfAttention2d(16, (4, 4))
    with pytest.raises(ValueError, match="4x4"):
        attn(torch.randn(1, 16, 5, 4))
    with pytest.raises(ValueError, match="4x4"):
        B.BoTBlock(32, 16, 32, (4, 4)).cost(8, 8)


def test_grouped_weight_layout_is_what_from_grouped_assumes():
    # the grouped 3x3's weight is (C·d, d, 3, 3) and rows i·d ... (i+1)·d - 1 form group i: the
    # i-th output group of a grouped conv only sees the i-th input group.
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    x = torch.zeros(1, 8, 5, 5)
    x[:, 2:4] = torch.randn(1, 2, 5, 5)  # only group 1 has input
    with torch.no_grad():
        y = conv(x)
    assert y[:, 2:4].abs().sum() > 0 and y[:, :2].abs().sum() == 0 and y[:, 4:].abs().sum() == 0
    assert math.prod(conv.weight.shape) == 8 * 2 * 9


def test_plot_block_costs_draws_params_and_macs():
    import matplotlib

    matplotlib.use("Agg")
    from edgeai.plots import plot_block_costs

    costs = {"bottleneck": B.bottleneck_cost(64, 16, 64, 1, 8, 8), "mbv2": (1000, 20000)}
    ax = plot_block_costs(costs)
    heights = [round(bar.get_height()) for bar in ax.patches]
    assert heights == [costs["bottleneck"].params, 1000, costs["bottleneck"].macs, 20000]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bottleneck", "mbv2"]
    with pytest.raises(ValueError, match="empty"):
        plot_block_costs({})
