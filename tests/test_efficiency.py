"""edgeai.efficiency against oracles: real PyTorch layers, PyTorch's own FLOP counter, and
hand-computed numbers (each with its derivation)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgeai import efficiency as eff
from edgeai.efficiency import profile


def torch_macs(module: nn.Module, x: torch.Tensor) -> int:
    """PyTorch's own counter (torch.utils.flop_counter) counts 2 FLOPs per multiply-accumulate."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


def output_hw(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """h_o, w_o as seen by a forward hook on the real layer."""
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("shape", o.shape))
    with torch.no_grad():
        module(x)
    handle.remove()
    return tuple(seen["shape"][-2:])


# ------------------------------------------------------------------ formulas vs real layers


@pytest.mark.parametrize("seed", range(40))
def test_conv_formulas_match_real_layers(seed):
    rng = random.Random(seed)
    g = rng.choice([1, 1, 2, 3, 4])
    c_i, c_o = g * rng.randint(1, 12), g * rng.randint(1, 12)
    k_h, k_w = rng.choice([1, 3, 5, 7]), rng.choice([1, 3, 5])
    stride, padding, dilation = rng.choice([1, 2, 3]), rng.randint(0, 3), rng.choice([1, 2])
    h_i, w_i, n = rng.randint(11, 24), rng.randint(11, 24), rng.randint(1, 3)
    conv = nn.Conv2d(c_i, c_o, (k_h, k_w), stride, padding, dilation, groups=g, bias=False)
    x = torch.randn(n, c_i, h_i, w_i)
    h_o, w_o = output_hw(conv, x)

    assert eff.conv_output_size(h_i, k_h, stride, padding, dilation) == h_o
    assert eff.conv_output_size(w_i, k_w, stride, padding, dilation) == w_o
    assert eff.conv_params(c_i, c_o, k_h, k_w, g) == conv.weight.numel()
    macs = eff.conv_macs(c_i, c_o, k_h, k_w, h_o, w_o, g, n)
    assert macs == torch_macs(conv, x) == profile(conv, x).macs


@pytest.mark.parametrize("seed", range(15))
def test_depthwise_and_pointwise_are_the_grouped_formula(seed):
    rng = random.Random(100 + seed)
    c, k, h_i = rng.randint(1, 48), rng.choice([3, 5, 7]), rng.randint(7, 20)
    dw = nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False)
    x = torch.randn(1, c, h_i, h_i)
    h_o, w_o = output_hw(dw, x)
    assert eff.depthwise_conv_params(c, k, k) == dw.weight.numel() == c * k * k
    assert eff.depthwise_conv_macs(c, k, k, h_o, w_o) == torch_macs(dw, x) == k * k * c * h_o * w_o
    assert eff.depthwise_conv_macs(c, k, k, h_o, w_o) == eff.conv_macs(c, c, k, k, h_o, w_o, g=c)

    c_o = rng.randint(1, 48)
    pw = nn.Conv2d(c, c_o, 1, bias=False)
    assert eff.pointwise_conv_params(c, c_o) == pw.weight.numel() == c * c_o
    assert eff.pointwise_conv_macs(c, c_o, h_i, h_i) == torch_macs(pw, x) == c * c_o * h_i * h_i


@pytest.mark.parametrize("seed", range(15))
def test_linear_formulas_match_real_layers(seed):
    rng = random.Random(200 + seed)
    c_i, c_o, n = rng.randint(1, 500), rng.randint(1, 500), rng.randint(1, 6)
    fc = nn.Linear(c_i, c_o, bias=False)
    x = torch.randn(n, c_i)
    assert eff.linear_params(c_i, c_o) == fc.weight.numel()
    assert eff.linear_macs(c_i, c_o, n) == torch_macs(fc, x) == profile(fc, x).macs


def test_lecture_numbers():
    # The lecture's bottleneck slide: 2048x512 1x1, 512x512 3x3, 512x2048 1x1 at H x W = 7 x 7
    h = w = 7
    bottleneck = (
        eff.pointwise_conv_macs(2048, 512, h, w)
        + eff.conv_macs(512, 512, 3, 3, h, w)
        + eff.pointwise_conv_macs(512, 2048, h, w)
    )
    assert bottleneck == 512 * 512 * 17 * h * w
    single = eff.conv_macs(2048, 2048, 3, 3, h, w)
    assert single == 512 * 512 * 144 * h * w
    assert round(single / bottleneck, 1) == 8.5
    assert eff.flops(1_000) == 2_000
    assert eff.ops(1_000) == 2_000  # integer operations: the same count (int8 deployment)
    assert eff.model_size(1_000_000, bits=8) == 1_000_000 and eff.model_size(1_000_000) == 4_000_000
    assert eff.num_activations((1, 64, 56, 56)) == 200_704


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: eff.conv_params(32, 64, 3, 3, g=3), "g=3 does not divide c_i=32"),
        (lambda: eff.conv_macs(12, 10, 3, 3, 4, 4, g=4), "g=4 does not divide c_o=10"),
        (lambda: eff.conv_params(0, 64, 3, 3), "c_i must be a positive integer"),
        (lambda: eff.linear_macs(10, -1), "c_o must be a positive integer"),
        (lambda: eff.conv_macs(3, 8, 3, 3, 0, 4), "h_o must be a positive integer"),
        (lambda: eff.linear_macs(3, 8, n=0), "n must be a positive integer"),
        (lambda: eff.conv_output_size(4, 7), "does not fit"),
        (lambda: eff.conv_output_size(8, 3, padding=-1), "padding must be a non-negative integer"),
        (lambda: eff.model_size(10, bits=0), "bits must be a positive integer"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_integers_are_refused():
    with pytest.raises(TypeError, match="k_h must be a positive integer"):
        eff.conv_params(3, 8, 3.0, 3)
    with pytest.raises(TypeError, match="c_i"):
        eff.linear_params(True, 3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        profile("resnet", (1, 3, 8, 8))
    with pytest.raises(TypeError, match="x must be an input tensor or a shape"):
        profile(nn.Linear(3, 3), 3)


# ------------------------------------------------------------------ profile


def test_profile_rows_and_totals_of_a_small_cnn():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    p = profile(net, (1, 3, 8, 8))
    # conv0 3*9*8*64, conv4 8*9*16*16, linear 16*10; BN, ReLU, pooling and bias count zero
    assert p.macs == 3 * 9 * 8 * 64 + 8 * 9 * 16 * 16 + 16 * 10 == torch_macs(net.eval(), torch.randn(1, 3, 8, 8))
    assert p.flops == 2 * p.macs
    assert p.params == sum(t.numel() for t in net.parameters())  # bias and BN included
    assert [r.name for r in p.layers] == [str(i) for i in range(9)]
    assert p["0"].macs == 13824 and p["0"].params == 216 and p["0"].output_shape == (1, 8, 8, 8)
    assert p["1"].params == 16 and p["1"].macs == 0
    assert p["4"].params == 8 * 9 * 16 + 16
    assert p["3"].activations == 8 * 4 * 4
    assert p.activations == sum(r.activations for r in p.layers)
    # peak: conv0 holds its input (192) and output (512); BN and ReLU run in place
    assert p.peak_activations == 192 + 512 and p.peak_layer == "0"
    assert p.model_size(8) == p.params and p.model_size_bytes == 4 * p.params
    assert p.peak_memory(8) == 704
    text = str(p)
    assert "Conv2d" in text and f"{p.macs:,}" in text and "peak #activations" in text
    with pytest.raises(KeyError, match="no layer named"):
        p["nope"]


class Residual(nn.Module):
    """x + conv2(conv1(x)): the block input must stay alive until the addition."""

    def __init__(self, c: int, expand: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, expand, 1, bias=False)
        self.conv2 = nn.Conv2d(expand, c, 1, bias=False)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


def test_peak_activation_keeps_skip_connections_alive():
    c, e, hw = 4, 24, 5 * 5
    p = profile(Residual(c, e), (1, c, 5, 5))
    # at conv2: x (held for the skip) + conv1's output + conv2's output
    assert p.peak_activations == c * hw + e * hw + c * hw
    chain = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.Conv2d(e, c, 1, bias=False))
    # without the skip, x dies after conv1: the peak is at conv1 or conv2, each holding in + out
    assert profile(chain, (1, c, 5, 5)).peak_activations == c * hw + e * hw


def test_profile_restores_training_mode_and_counts_batches():
    net = nn.Sequential(nn.Linear(8, 4), nn.Dropout(0.5))
    net.train()
    p1, p4 = profile(net, torch.randn(1, 8)), profile(net, torch.randn(4, 8))
    assert net.training
    assert p4.macs == 4 * p1.macs == 4 * 32


class ManualAttention(nn.Module):
    """Self-attention written out: projections, Q Kᵀ, softmax, times V, output projection."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):  # (B, L, d)
        b, l, d = x.shape
        q, k, v = self.qkv(x).view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5).softmax(-1)  # (B, h, L, L)
        return self.out((a @ v).transpose(1, 2).reshape(b, l, d))


class TorchAttention(nn.Module):
    def __init__(self, d, heads, fused: bool):
        super().__init__()
        self.mha, self.fused = nn.MultiheadAttention(d, heads, batch_first=True), fused

    def forward(self, x):
        if self.fused:
            return self.mha(x, x, x, need_weights=False)[0]
        q = self.mha.in_proj_weight  # the scaled-dot-product path of F.scaled_dot_product_attention
        b, l, d = x.shape
        h = self.mha.num_heads
        qkv = nn.functional.linear(x, q, self.mha.in_proj_bias).view(b, l, 3, h, d // h).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.mha.out_proj(y.transpose(1, 2).reshape(b, l, d))


@pytest.mark.parametrize("model", ["manual", "torch-fused", "torch-sdpa"])
def test_attention_macs_whichever_code_path(model):
    l, d, h = 10, 32, 4
    net = {"manual": ManualAttention(d, h), "torch-fused": TorchAttention(d, h, True),
           "torch-sdpa": TorchAttention(d, h, False)}[model]
    # Vaswani et al.: Q, K, V and output projections 4·L·d², Q·Kᵀ and softmax·V 2·L²·d
    assert profile(net, (1, l, d)).macs == 4 * l * d * d + 2 * l * l * d


def test_transposed_convolution_macs():
    up = nn.ConvTranspose2d(8, 4, 2, stride=2, bias=False)
    x = torch.randn(1, 8, 5, 5)
    # every input element is scattered over c_o·k_h·k_w outputs
    assert profile(up, x).macs == 8 * 25 * 4 * 4 == torch_macs(up, x)


def test_operations_per_second():
    """FLOPS / OPS: a rate. MobileNetV2 (300,774,272 MACs, Sandler et al. 2018 report 300M) run
    in 10 ms achieves 2·300.8M / 0.01 s = 60.2 GFLOPS."""
    assert eff.per_second(eff.flops(300_774_272), 0.010) == pytest.approx(60.154_854_4e9)
    assert eff.per_second(eff.ops(5), 2.0) == 5.0
    with pytest.raises(ValueError, match="seconds must be a positive, finite time"):
        eff.per_second(10, 0)
    with pytest.raises(ValueError, match="count must be a non-negative number"):
        eff.per_second(-1, 1.0)
