"""Classic manual-designed building blocks (Lecture 11, "Classic Manual-Designed Building Blocks").

One class per block of the lecture, in the lecture's order, each with the paper it comes from:

    Bottleneck            ResNet-50's 1x1 reduce, 3x3, 1x1 expand            He et al. 2016
    ResNeXtBlock          the bottleneck with a grouped 3x3 (form (c)), and   Xie et al. 2017
    ResNeXtAggregated     its equivalent forms (a) aggregated transformations
    ResNeXtEarlyConcat    and (b) early concatenation
    DepthwiseSeparable    MobileNet: depthwise 3x3 + pointwise 1x1           Howard et al. 2017
    InvertedResidual      MobileNetV2: expand 1x1, depthwise, linear 1x1     Sandler et al. 2018
    ShuffleUnit           ShuffleNet: 1x1 group conv, channel shuffle, ...   Zhang et al. 2018
    MultiHeadSelfAttention  the Transformer's MHSA from the lecture's equations   Vaswani et al. 2017
    BoTBlock              the bottleneck with its 3x3 replaced by MHSA        Srinivas et al. 2021
    SepConv               NASNet's separable convolution (ReLU-sep-BN twice)  Zoph et al. 2018

plus the small pieces networks are made of (`ConvBNAct`, `ClassifierHead`) and
`channel_shuffle(x, groups)`.

Every block has an analytic cost: a pure function (`bottleneck_cost`, `inverted_residual_cost`, ...)
that computes #parameters and MACs from the formulas of `edgeai.efficiency`, and a `.cost(h, w)`
method that calls it with the block's own arguments. The cost equals what `edgeai.efficiency.profile`
measures on the block (the tests check this exactly):

- ``params``: every parameter element, as `profile` counts it: conv/linear weights, biases, and the
  scale and shift of every BatchNorm (2·c each; running statistics are buffers, not parameters).
- ``macs``: the lecture's convention: convolutions and matrix products only, batch size 1.
- ``peak_activations`` (where given): the activation elements held at once at the block's peak, by
  `profile`'s definition: the block input counts, a tensor lives until its last consumer (so a
  residual input lives across the whole block), and BN / element-wise ops work in place when their
  input dies there. For a chain of blocks (each block's input used by that block only) the peak of
  the network is the max of the blocks' peaks, which is how `Cost.then` combines them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from edgeai.efficiency import (
    _positive_int,
    conv_macs,
    conv_output_size,
    conv_params,
    depthwise_conv_macs,
    depthwise_conv_params,
    linear_macs,
    linear_params,
    pointwise_conv_macs,
    pointwise_conv_params,
)

__all__ = [
    "Cost",
    "ConvBNAct",
    "conv_bn_act_cost",
    "ClassifierHead",
    "classifier_head_cost",
    "max_pool_cost",
    "Bottleneck",
    "bottleneck_cost",
    "ResNeXtBlock",
    "ResNeXtAggregated",
    "ResNeXtEarlyConcat",
    "resnext_block_cost",
    "DepthwiseSeparable",
    "depthwise_separable_cost",
    "InvertedResidual",
    "inverted_residual_cost",
    "channel_shuffle",
    "ShuffleUnit",
    "shuffle_unit_cost",
    "MultiHeadSelfAttention",
    "mhsa_cost",
    "RelativeSelfAttention2d",
    "relative_self_attention_cost",
    "BoTBlock",
    "bot_block_cost",
    "SepConv",
    "sep_conv_cost",
]


# --------------------------------------------------------------------------------------------
# The cost of a block
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """Analytic size and cost of a block (or of a chain of blocks) for one input (batch size 1)."""

    params: int  # every parameter element: weights, biases, BatchNorm scale and shift
    macs: int  # multiply-accumulates, lecture convention (convolutions and matrix products)
    out_shape: tuple  # shape of the output without the batch axis: (c_o, h_o, w_o), or (classes,)
    peak_activations: int | None = None  # elements held at once at the peak (profile's rule); None: not modelled

    def then(self, other: "Cost") -> "Cost":
        """The cost of running `self` and then `other` on its output: params and MACs add up,
        the output is `other`'s, the peak is the larger of the two (None if either is None)."""
        peak = None
        if self.peak_activations is not None and other.peak_activations is not None:
            peak = max(self.peak_activations, other.peak_activations)
        return Cost(self.params + other.params, self.macs + other.macs, other.out_shape, peak)


def _bn_params(c: int) -> int:
    """BatchNorm2d(c) learns a scale γ and a shift β per channel: 2·c parameters."""
    return 2 * c


def _check_stride(stride) -> int:
    stride = _positive_int("stride", stride)
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return stride


def _check_kernel(kernel_size) -> int:
    kernel_size = _positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (padding k//2 keeps the size), got {kernel_size}")
    return kernel_size


def _check_divides(g_name: str, g: int, c_name: str, c: int) -> None:
    if c % g:
        raise ValueError(f"{g_name}={g} does not divide {c_name}={c}")


# --------------------------------------------------------------------------------------------
# Small pieces: convolution + BN + activation, the classifier head, max pooling
# --------------------------------------------------------------------------------------------

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, None: nn.Identity}


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) -> BatchNorm -> activation: the unit every CNN of the lecture is made of.

    `activation` is "relu", "relu6" or None (a linear layer, e.g. MobileNetV2's projection).
    Padding k//2 keeps the size at stride 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = "relu",
    ):
        in_channels, out_channels = _positive_int("in_channels", in_channels), _positive_int("out_channels", out_channels)
        kernel_size, stride, groups = _check_kernel(kernel_size), _check_stride(stride), _positive_int("groups", groups)
        _check_divides("groups", groups, "in_channels", in_channels)
        _check_divides("groups", groups, "out_channels", out_channels)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}, got {activation!r}")
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            _ACTIVATIONS[activation](),
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups

    def cost(self, h: int, w: int) -> Cost:
        return conv_bn_act_cost(self.in_channels, self.out_channels, self.kernel_size, self.stride, h, w, self.groups)


def conv_bn_act_cost(c_i: int, c_o: int, k: int, stride: int, h: int, w: int, g: int = 1) -> Cost:
    """ConvBNAct: params c_o·c_i/g·k·k + 2·c_o, MACs c_i/g·k·k·c_o·h_o·w_o.

    Peak: input + output of the convolution (BN and the activation then work in place).
    """
    h_o, w_o = conv_output_size(h, k, stride, k // 2), conv_output_size(w, k, stride, k // 2)
    params = conv_params(c_i, c_o, k, k, g) + _bn_params(c_o)
    macs = conv_macs(c_i, c_o, k, k, h_o, w_o, g)
    peak = c_i * h * w + c_o * h_o * w_o
    return Cost(params, macs, (c_o, h_o, w_o), peak)


class ClassifierHead(nn.Sequential):
    """Global average pooling -> flatten -> (dropout) -> fully-connected layer with bias.

    The last rows of every table of the lecture's CNNs ("Avg Pool 7x7, FC 1000").
    """

    def __init__(self, in_channels: int, num_classes: int = 1000, dropout: float = 0.0):
        in_channels, num_classes = _positive_int("in_channels", in_channels), _positive_int("num_classes", num_classes)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_channels, num_classes))
        super().__init__(*layers)
        self.in_channels, self.num_classes = in_channels, num_classes

    def cost(self, h: int, w: int) -> Cost:
        return classifier_head_cost(self.in_channels, h, w, self.num_classes)


def classifier_head_cost(c: int, h: int, w: int, num_classes: int) -> Cost:
    """Pool + linear: params c·classes + classes (bias), MACs c·classes (pooling counts zero).

    Peak: the feature map and its pooled vector at the pooling, then the vector and the logits.
    """
    c, h, w = _positive_int("c", c), _positive_int("h", h), _positive_int("w", w)
    params = linear_params(c, num_classes) + num_classes
    macs = linear_macs(c, num_classes)
    peak = max(c * h * w + c, c + num_classes)
    return Cost(params, macs, (num_classes,), peak)


def max_pool_cost(c: int, h: int, w: int, k: int = 3, stride: int = 2, padding: int = 1) -> Cost:
    """Max pooling (ResNet's and ShuffleNet's stem): no parameters, no MACs; holds input + output."""
    h_o, w_o = conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding)
    return Cost(0, 0, (c, h_o, w_o), c * h * w + c * h_o * w_o)


# --------------------------------------------------------------------------------------------
# ResNet: the bottleneck block
# --------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """ResNet's bottleneck block (He et al. 2016, "Deep residual learning", Fig. 5 right):

        1x1 conv (reduce to mid_channels) -> 3x3 conv -> 1x1 conv (restore out_channels),
        BN after each conv, ReLU after the first two, + shortcut, ReLU.

    The shortcut is the identity, or a 1x1 projection conv + BN when the stride or the channel
    count changes (the paper's option B). NOTE: the stride sits on the 3x3 conv, as in torchvision
    and the ResNeXt paper ("ResNet v1.5"); He et al. put it on the first 1x1, which costs fewer MACs
    (3.8 GFLOPs instead of 4.1 for ResNet-50). `groups` > 1 makes the 3x3 a grouped conv (ResNeXt).

    The lecture's point: at 2048 channels, 1x1 (2048->512), 3x3 (512->512), 1x1 (512->2048) cost
    512·512·17·H·W MACs, against 512·512·144·H·W for one 3x3 conv at 2048 channels: ~8.5x less.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__()
        in_channels = _positive_int("in_channels", in_channels)
        mid_channels = _positive_int("mid_channels", mid_channels)
        out_channels = _positive_int("out_channels", out_channels)
        stride, groups = _check_stride(stride), _positive_int("groups", groups)
        _check_divides("groups", groups, "mid_channels", mid_channels)
        self.in_channels, self.mid_channels, self.out_channels = in_channels, mid_channels, out_channels
        self.stride, self.groups = stride, groups

        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)  # 1x1: reduce
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)  # 1x1: restore
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, c_mid, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, c_mid, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, c_out, H/s, W/s)
        return self.relu(out + self.shortcut(x))  # (B, c_out, H/s, W/s)

    def cost(self, h: int, w: int) -> Cost:
        return bottleneck_cost(self.in_channels, self.mid_channels, self.out_channels, self.stride, h, w, self.groups)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or a 1x1 projection + BN where the shape changes (He et al., option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def bottleneck_cost(
    c_i: int, c_mid: int, c_o: int, stride: int, h: int, w: int, g: int = 1
) -> Cost:
    """Bottleneck (and ResNeXt form (c) with g = cardinality):

    params = c_mid·c_i + c_mid·c_mid/g·9 + c_o·c_mid (+ c_o·c_i projection) + BN 2·(2·c_mid + c_o (+ c_o))
    MACs   = c_i·c_mid·h·w + c_mid/g·9·c_mid·h_o·w_o + c_mid·c_o·h_o·w_o (+ c_i·c_o·h_o·w_o)

    Peak (profile's rule): the block input lives until the shortcut has read it, so the largest
    moment is input + 1x1 output + 3x3 output, or input + 3x3 output + block output (+ projection).
    """
    stride = _check_stride(stride)
    h_o, w_o = conv_output_size(h, 3, stride, 1), conv_output_size(w, 3, stride, 1)
    a, m1, m2, y = c_i * h * w, c_mid * h * w, c_mid * h_o * w_o, c_o * h_o * w_o
    params = (
        pointwise_conv_params(c_i, c_mid) + _bn_params(c_mid)
        + conv_params(c_mid, c_mid, 3, 3, g) + _bn_params(c_mid)
        + pointwise_conv_params(c_mid, c_o) + _bn_params(c_o)
    )
    macs = (
        pointwise_conv_macs(c_i, c_mid, h, w)
        + conv_macs(c_mid, c_mid, 3, 3, h_o, w_o, g)
        + pointwise_conv_macs(c_mid, c_o, h_o, w_o)
    )
    moments = [a + m1, a + m1 + m2, a + m2 + y, a + y]
    if stride != 1 or c_i != c_o:  # projection shortcut, run after the main branch
        params += pointwise_conv_params(c_i, c_o) + _bn_params(c_o)
        macs += pointwise_conv_macs(c_i, c_o, h_o, w_o)
        moments += [a + y + y, y + y]
    return Cost(params, macs, (c_o, h_o, w_o), max(moments))


# --------------------------------------------------------------------------------------------
# ResNeXt: grouped convolution, and the three equivalent forms of the block
# --------------------------------------------------------------------------------------------


def _resnext_args(in_channels, out_channels, cardinality, bottleneck_width, stride):
    return (
        _positive_int("in_channels", in_channels),
        _positive_int("out_channels", out_channels),
        _positive_int("cardinality", cardinality),
        _positive_int("bottleneck_width", bottleneck_width),
        _check_stride(stride),
    )


class ResNeXtBlock(Bottleneck):
    """ResNeXt block, form (c): the bottleneck with a grouped 3x3 convolution (Xie et al. 2017,
    "Aggregated residual transformations", Fig. 3(c)).

    `cardinality` C is the number of groups (paths), `bottleneck_width` d the channels per path:
    1x1 (c_in -> C·d), 3x3 grouped (C·d -> C·d, g = C), 1x1 (C·d -> c_out). ResNeXt-50 32x4d has
    C = 32, d = 4 in its first stage (width 128), doubling d with every stage.
    """

    def __init__(self, in_channels: int, out_channels: int, cardinality: int = 32, bottleneck_width: int = 4, stride: int = 1):
        in_channels, out_channels, cardinality, bottleneck_width, stride = _resnext_args(
            in_channels, out_channels, cardinality, bottleneck_width, stride)
        super().__init__(in_channels, cardinality * bottleneck_width, out_channels, stride, groups=cardinality)
        self.cardinality, self.bottleneck_width = cardinality, bottleneck_width


def resnext_block_cost(
    c_i: int, c_o: int, cardinality: int, bottleneck_width: int, stride: int, h: int, w: int
) -> Cost:
    """All three forms of the ResNeXt block have the same params and MACs: the bottleneck with
    c_mid = C·d and a grouped 3x3 with g = C (C paths of d channels each). The peak given is form (c)'s."""
    return bottleneck_cost(c_i, cardinality * bottleneck_width, c_o, stride, h, w, g=cardinality)


class _ResNeXtForm(nn.Module):
    """Shared by forms (a) and (b): C parallel paths of d channels, BN after aggregation, shortcut."""

    def __init__(self, in_channels, out_channels, cardinality, bottleneck_width, stride):
        super().__init__()
        in_channels, out_channels, cardinality, bottleneck_width, stride = _resnext_args(
            in_channels, out_channels, cardinality, bottleneck_width, stride)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.cardinality, self.bottleneck_width = cardinality, bottleneck_width
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def _path(self) -> list[nn.Module]:
        """One path's transformation T_i: 1x1 (c_in -> d), BN, ReLU, 3x3 (d -> d), BN, ReLU."""
        d = self.bottleneck_width
        return [
            nn.Conv2d(self.in_channels, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(),
            nn.Conv2d(d, d, 3, self.stride, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(),
        ]

    def cost(self, h: int, w: int) -> Cost:
        c = resnext_block_cost(self.in_channels, self.out_channels, self.cardinality, self.bottleneck_width, self.stride, h, w)
        return Cost(c.params, c.macs, c.out_shape, None)  # the C separate paths hold more at once

    @classmethod
    def from_grouped(cls, block: ResNeXtBlock):
        """The same function as `block` (form (c)) in this form: path i takes the i-th slice of
        d channels of every layer (its rows of the 1x1 reduce, its group of the 3x3, its columns
        of the 1x1 restore). Outputs agree up to float rounding."""
        if not isinstance(block, ResNeXtBlock):
            raise TypeError(f"block must be a ResNeXtBlock (form (c)), got {type(block).__name__}")
        new = cls(block.in_channels, block.out_channels, block.cardinality, block.bottleneck_width, block.stride)
        d = block.bottleneck_width
        with torch.no_grad():
            for i, path in enumerate(new.paths):
                rows = slice(i * d, (i + 1) * d)
                path[0].weight.copy_(block.conv1.weight[rows])
                _copy_bn(path[1], block.bn1, rows)
                path[3].weight.copy_(block.conv2.weight[rows])  # group i of the grouped 3x3
                _copy_bn(path[4], block.bn2, rows)
            new._copy_restore(block.conv3.weight)  # (c_out, C·d, 1, 1): path i owns columns i·d ... (i+1)·d - 1
            _copy_bn(new.bn3, block.bn3, slice(None))
            new.shortcut.load_state_dict(block.shortcut.state_dict())
        return new


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, channels: slice) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[channels])


class ResNeXtAggregated(_ResNeXtForm):
    """ResNeXt block, form (a): aggregated residual transformations (Xie et al. 2017, Fig. 3(a)).

        y = ReLU( x' + BN( Σ_{i=1..C} T_i(x) ) ),   T_i: 1x1 (c_in -> d), 3x3 (d -> d), 1x1 (d -> c_out)

    Same params and MACs as form (c); equal outputs given the same weights (`from_grouped`).
    NOTE: the BN of the restoring 1x1 acts on the aggregated sum, as it must for (a) = (c).
    """

    def __init__(self, in_channels: int, out_channels: int, cardinality: int = 32, bottleneck_width: int = 4, stride: int = 1):
        super().__init__(in_channels, out_channels, cardinality, bottleneck_width, stride)
        d = self.bottleneck_width
        self.paths = nn.ModuleList(
            nn.Sequential(*self._path(), nn.Conv2d(d, self.out_channels, 1, bias=False))
            for _ in range(self.cardinality)
        )

    def _copy_restore(self, weight: torch.Tensor) -> None:
        d = self.bottleneck_width
        for i, path in enumerate(self.paths):
            path[6].weight.copy_(weight[:, i * d:(i + 1) * d])  # path i's own 1x1 restore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = sum(path(x) for path in self.paths)  # C paths, each (B, c_out, H/s, W/s), summed
        out = self.bn3(out)  # (B, c_out, H/s, W/s)
        return self.relu(out + self.shortcut(x))  # (B, c_out, H/s, W/s)


class ResNeXtEarlyConcat(_ResNeXtForm):
    """ResNeXt block, form (b): early concatenation (Xie et al. 2017, Fig. 3(b)).

    The C paths stop after their 3x3 conv; their d-channel outputs are concatenated (C·d channels)
    and one 1x1 conv restores c_out. Same params, MACs and outputs as forms (a) and (c).
    """

    def __init__(self, in_channels: int, out_channels: int, cardinality: int = 32, bottleneck_width: int = 4, stride: int = 1):
        super().__init__(in_channels, out_channels, cardinality, bottleneck_width, stride)
        self.paths = nn.ModuleList(nn.Sequential(*self._path()) for _ in range(self.cardinality))
        self.conv3 = nn.Conv2d(self.cardinality * self.bottleneck_width, self.out_channels, 1, bias=False)

    def _copy_restore(self, weight: torch.Tensor) -> None:
        self.conv3.weight.copy_(weight)  # the concatenation is ordered path by path, as (c)'s groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([path(x) for path in self.paths], dim=1)  # (B, C·d, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, c_out, H/s, W/s)
        return self.relu(out + self.shortcut(x))  # (B, c_out, H/s, W/s)


# --------------------------------------------------------------------------------------------
# MobileNet: depthwise-separable block; MobileNetV2: inverted bottleneck
# --------------------------------------------------------------------------------------------


class DepthwiseSeparable(nn.Module):
    """MobileNet's depthwise-separable block (Howard et al. 2017, Fig. 3 right):

        3x3 depthwise conv (spatial filtering, one filter per channel) -> BN -> ReLU
        1x1 pointwise conv (mixes the channels)                       -> BN -> ReLU

    Against a normal k x k conv it costs 1/c_o + 1/k² of the MACs (about 8-9x less for k = 3).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.stride, self.kernel_size = _check_stride(stride), _check_kernel(kernel_size)
        self.depthwise = ConvBNAct(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)  # (B, c_in, H/s, W/s)
        return self.pointwise(x)  # (B, c_out, H/s, W/s)

    def cost(self, h: int, w: int) -> Cost:
        return depthwise_separable_cost(self.in_channels, self.out_channels, self.kernel_size, self.stride, h, w)


def depthwise_separable_cost(c_i: int, c_o: int, k: int, stride: int, h: int, w: int) -> Cost:
    """Depthwise k x k + pointwise: params c_i·k·k + c_o·c_i (+ BN), MACs (k·k + c_o)·c_i·h_o·w_o."""
    return conv_bn_act_cost(c_i, c_i, k, stride, h, w, g=c_i).then(
        conv_bn_act_cost(c_i, c_o, 1, 1, *_hw_after(k, stride, h, w)))


def _hw_after(k: int, stride: int, h: int, w: int) -> tuple[int, int]:
    return conv_output_size(h, k, stride, k // 2), conv_output_size(w, k, stride, k // 2)


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block with linear bottleneck (Sandler et al. 2018, Table 1):

        1x1 conv, c_in -> t·c_in, BN, ReLU6     (expansion; left out when t = 1)
        k x k depthwise, stride s, BN, ReLU6
        1x1 conv, t·c_in -> c_out, BN           (linear: no activation)
        + x  only when s = 1 and c_in = c_out

    The depthwise conv works on t times more channels than the block's input and output ("inverted"
    bottleneck): cheap in MACs (depthwise cost grows linearly) but the expanded activations are the
    largest tensors of the block, so they set its peak memory.
    `expand_ratio` is t; the expanded width is round(t·c_in) (as torchvision).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 6, kernel_size: int = 3):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.stride, self.kernel_size = _check_stride(stride), _check_kernel(kernel_size)
        self.expand_ratio = expand_ratio
        hidden = _expanded(self.in_channels, expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = []
        if hidden != in_channels:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation="relu6"))  # expand
        layers += [
            ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, activation="relu6"),  # depthwise
            ConvBNAct(hidden, out_channels, 1, activation=None),  # linear projection
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)  # (B, c_in, H, W) -> (B, t·c_in, H, W) -> (B, t·c_in, H/s, W/s) -> (B, c_out, H/s, W/s)
        if self.use_residual:
            return x + out  # (B, c_out, H, W)
        return out

    def cost(self, h: int, w: int) -> Cost:
        return inverted_residual_cost(self.in_channels, self.out_channels, self.expand_ratio,
                                      self.kernel_size, self.stride, h, w)


def _expanded(c_i: int, t) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
        raise ValueError(f"expand_ratio t must be a positive number, got {t!r}")
    hidden = int(round(c_i * t))
    if hidden < 1:
        raise ValueError(f"expand_ratio t={t} leaves no channel of c_in={c_i}")
    return hidden


def inverted_residual_cost(c_in: int, c_out: int, t: float, kernel: int, stride: int, h: int, w: int) -> Cost:
    """MobileNetV2 block with expanded width c_e = round(t·c_in) (no expansion conv when c_e = c_in):

    params = c_in·c_e + c_e·k² + c_e·c_out + BN 2·(c_e + c_e + c_out)
    MACs   = c_in·c_e·h·w + k²·c_e·h_o·w_o + c_e·c_out·h_o·w_o

    Peak, by profile's rule (A = c_in·h·w input, E1 = c_e·h·w expanded, E2 = c_e·h_o·w_o after
    the depthwise conv, Y = c_out·h_o·w_o output, r = 1 when the block has its residual):
        expansion A + E1;  depthwise r·A + E1 + E2;  projection r·A + E2 + Y.
    At stride 1 with t = 6 the depthwise moment, input + 2 expanded maps, dominates.
    This function is what a search space's analytic costs(arch) should add up.
    """
    c_in, c_out = _positive_int("c_in", c_in), _positive_int("c_out", c_out)
    kernel, stride = _check_kernel(kernel), _check_stride(stride)
    h, w = _positive_int("h", h), _positive_int("w", w)
    c_e = _expanded(c_in, t)
    h_o, w_o = _hw_after(kernel, stride, h, w)
    r = 1 if stride == 1 and c_in == c_out else 0
    a, e1, e2, y = c_in * h * w, c_e * h * w, c_e * h_o * w_o, c_out * h_o * w_o

    params = depthwise_conv_params(c_e, kernel, kernel) + _bn_params(c_e)
    params += pointwise_conv_params(c_e, c_out) + _bn_params(c_out)
    macs = depthwise_conv_macs(c_e, kernel, kernel, h_o, w_o) + pointwise_conv_macs(c_e, c_out, h_o, w_o)
    moments = [r * a + e2 + y]
    if c_e != c_in:  # the expansion conv exists
        params += pointwise_conv_params(c_in, c_e) + _bn_params(c_e)
        macs += pointwise_conv_macs(c_in, c_e, h, w)
        moments += [a + e1, r * a + e1 + e2]
    else:  # the depthwise conv reads the block input directly
        moments += [a + e2]
    return Cost(params, macs, (c_out, h_o, w_o), max(moments))


# --------------------------------------------------------------------------------------------
# ShuffleNet: 1x1 group convolution and channel shuffle
# --------------------------------------------------------------------------------------------


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel shuffle (Zhang et al. 2018, Fig. 1(c)): with g groups of n channels each, reshape the
    channel axis to (g, n), transpose to (n, g) and flatten, so that every group of the next group
    conv receives channels from every group of the previous one."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise TypeError(f"x must be a 4-d tensor (B, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    groups = _positive_int("groups", groups)
    b, c, h, w = x.shape
    _check_divides("groups", groups, "channels", c)
    x = x.view(b, groups, c // groups, h, w)  # (B, g, C/g, H, W)
    x = x.transpose(1, 2)  # (B, C/g, g, H, W)
    return x.reshape(b, c, h, w)  # (B, C, H, W), channels interleaved across the groups


class ShuffleUnit(nn.Module):
    """ShuffleNet unit (Zhang et al. 2018, Fig. 2(b) and (c)):

        1x1 group conv (g groups, to c_out/4 bottleneck channels), BN, ReLU
        channel shuffle
        3x3 depthwise conv (stride s), BN
        1x1 group conv (g groups), BN
        stride 1: ReLU(x + ·);  stride 2: ReLU(concat(avg-pool 3x3/2 (x), ·)), the branch then
        produces c_out - c_in channels so that the concatenation has c_out.

    `grouped_first=False` makes the first 1x1 an ordinary conv: the paper does so in the first unit
    of Stage 2, whose input has only 24 channels.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 3, stride: int = 1, grouped_first: bool = True):
        super().__init__()
        in_channels, out_channels = _positive_int("in_channels", in_channels), _positive_int("out_channels", out_channels)
        groups, stride = _positive_int("groups", groups), _check_stride(stride)
        bottleneck, branch_out, first_groups = _shuffle_shapes(in_channels, out_channels, groups, stride, grouped_first)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.stride, self.grouped_first = stride, grouped_first

        self.gconv1 = nn.Conv2d(in_channels, bottleneck, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(bottleneck)
        self.dwconv = nn.Conv2d(bottleneck, bottleneck, 3, stride, 1, groups=bottleneck, bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck)
        self.gconv2 = nn.Conv2d(bottleneck, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.relu = nn.ReLU()
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.gconv1(x)))  # (B, c_out/4, H, W)
        out = channel_shuffle(out, self.groups)  # (B, c_out/4, H, W)
        out = self.bn2(self.dwconv(out))  # (B, c_out/4, H/s, W/s)
        out = self.bn3(self.gconv2(out))  # (B, c_out [- c_in at s = 2], H/s, W/s)
        if self.stride == 1:
            return self.relu(x + out)  # (B, c_out, H, W)
        return self.relu(torch.cat([self.shortcut(x), out], dim=1))  # (B, c_out, H/2, W/2)

    def cost(self, h: int, w: int) -> Cost:
        return shuffle_unit_cost(self.in_channels, self.out_channels, self.groups, self.stride, h, w, self.grouped_first)


def _shuffle_shapes(c_i, c_o, g, stride, grouped_first):
    if c_o % 4:
        raise ValueError(f"out_channels={c_o} must be a multiple of 4 (bottleneck = out_channels/4)")
    bottleneck = c_o // 4
    if stride == 1 and c_i != c_o:
        raise ValueError(f"a stride-1 ShuffleNet unit adds its input: in_channels={c_i} must equal out_channels={c_o}")
    branch_out = c_o - c_i if stride == 2 else c_o
    if branch_out < 1:
        raise ValueError(f"a stride-2 unit concatenates its input: out_channels={c_o} must exceed in_channels={c_i}")
    first_groups = g if grouped_first else 1
    _check_divides("groups", first_groups, "in_channels", c_i)
    _check_divides("groups", g, "bottleneck channels (out_channels/4)", bottleneck)
    _check_divides("groups", g, "branch output channels", branch_out)
    return bottleneck, branch_out, first_groups


def shuffle_unit_cost(
    c_i: int, c_o: int, g: int, stride: int, h: int, w: int, grouped_first: bool = True
) -> Cost:
    """ShuffleNet unit with bottleneck m = c_o/4 and branch output b (c_o, or c_o - c_i at stride 2):

    params = c_i·m/g1 + 9·m + m·b/g + BN 2·(m + m + b)      (g1 = g, or 1 for Stage 2's first unit)
    MACs   = c_i·m/g1·h·w + 9·m·h_o·w_o + m·b/g·h_o·w_o      (shuffle and pooling count zero)
    """
    stride = _check_stride(stride)
    m, b, g1 = _shuffle_shapes(c_i, c_o, g, stride, grouped_first)
    h_o, w_o = conv_output_size(h, 3, stride, 1), conv_output_size(w, 3, stride, 1)
    params = (
        pointwise_conv_params(c_i, m, g1) + _bn_params(m)
        + depthwise_conv_params(m, 3, 3) + _bn_params(m)
        + pointwise_conv_params(m, b, g) + _bn_params(b)
    )
    macs = (
        pointwise_conv_macs(c_i, m, h, w, g1)
        + depthwise_conv_macs(m, 3, 3, h_o, w_o)
        + pointwise_conv_macs(m, b, h_o, w_o, g)
    )
    a, m1, m2, y = c_i * h * w, m * h * w, m * h_o * w_o, b * h_o * w_o
    # the input lives across the unit (shortcut); the shuffle's copy replaces its dying input
    moments = [a + m1, a + m1 + m2, a + m2 + y]
    if stride == 2:
        s = c_i * h_o * w_o  # the pooled shortcut, then the concatenation beside its two inputs
        moments += [a + y + s, 2 * (s + y)]
    return Cost(params, macs, (c_o, h_o, w_o), max(moments))


# --------------------------------------------------------------------------------------------
# Transformer: multi-head self-attention; BoTNet: the bottleneck transformer block
# --------------------------------------------------------------------------------------------


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention written from the lecture's equations (Vaswani et al. 2017):

        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),   Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V
        MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,     Q = K = V = x,  d_k = d_model / h

    The h per-head projections W_i^Q (d_model x d_k each) sit side by side in one d_model x d_model
    linear layer (and likewise for K and V). Input and output are (B, L, d_model), batch first.
    Equal to `torch.nn.MultiheadAttention(d_model, h, bias=bias, batch_first=True)` given the same
    weights (`from_torch`, `to_torch`). MACs: 4·L·d² (Q, K, V, W^O) + 2·L²·d (Q Kᵀ and · V).
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True):
        super().__init__()
        self.d_model, self.num_heads = _positive_int("d_model", d_model), _positive_int("num_heads", num_heads)
        _check_divides("num_heads", num_heads, "d_model", d_model)
        self.d_k = d_model // num_heads
        self.bias = bool(bias)
        self.w_q = nn.Linear(d_model, d_model, bias=bias)  # [W_1^Q ... W_h^Q]
        self.w_k = nn.Linear(d_model, d_model, bias=bias)  # [W_1^K ... W_h^K]
        self.w_v = nn.Linear(d_model, d_model, bias=bias)  # [W_1^V ... W_h^V]
        self.w_o = nn.Linear(d_model, d_model, bias=bias)  # W^O

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape  # (B, L, d_model)
        h, d_k = self.num_heads, self.d_k
        q = self.w_q(x).view(b, l, h, d_k).transpose(1, 2)  # (B, h, L, d_k): Q W_i^Q for every head i
        k = self.w_k(x).view(b, l, h, d_k).transpose(1, 2)  # (B, h, L, d_k)
        v = self.w_v(x).view(b, l, h, d_k).transpose(1, 2)  # (B, h, L, d_k)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, L, L): Q Kᵀ / √d_k
        weights = scores.softmax(dim=-1)  # (B, h, L, L): each row sums to 1
        heads = weights @ v  # (B, h, L, d_k): head_i
        concat = heads.transpose(1, 2).reshape(b, l, d)  # (B, L, d_model): Concat(head_1 ... head_h)
        return self.w_o(concat)  # (B, L, d_model)

    def cost(self, seq_len: int) -> Cost:
        return mhsa_cost(self.d_model, self.num_heads, seq_len, self.bias)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> "MultiHeadSelfAttention":
        """The same attention with the weights of a `torch.nn.MultiheadAttention`."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim:
            raise ValueError("mha must have kdim = vdim = embed_dim (self-attention)")
        new = cls(mha.embed_dim, mha.num_heads, bias=mha.in_proj_bias is not None)
        with torch.no_grad():
            for i, layer in enumerate((new.w_q, new.w_k, new.w_v)):
                rows = slice(i * mha.embed_dim, (i + 1) * mha.embed_dim)
                layer.weight.copy_(mha.in_proj_weight[rows])
                if new.bias:
                    layer.bias.copy_(mha.in_proj_bias[rows])
            new.w_o.weight.copy_(mha.out_proj.weight)
            if new.bias:
                new.w_o.bias.copy_(mha.out_proj.bias)
        return new

    def to_torch(self) -> nn.MultiheadAttention:
        """A `torch.nn.MultiheadAttention` (batch first) with this module's weights."""
        mha = nn.MultiheadAttention(self.d_model, self.num_heads, bias=self.bias, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([self.w_q.weight, self.w_k.weight, self.w_v.weight]))
            mha.out_proj.weight.copy_(self.w_o.weight)
            if self.bias:
                mha.in_proj_bias.copy_(torch.cat([self.w_q.bias, self.w_k.bias, self.w_v.bias]))
                mha.out_proj.bias.copy_(self.w_o.bias)
        return mha


def mhsa_cost(d_model: int, num_heads: int, seq_len: int, bias: bool = True) -> Cost:
    """MHSA over L = seq_len tokens of width d = d_model:

    params = 4·d² (+ 4·d biases);   MACs = 4·L·d² + 2·L²·d   (independent of the number of heads)
    """
    d, heads, l = _positive_int("d_model", d_model), _positive_int("num_heads", num_heads), _positive_int("seq_len", seq_len)
    _check_divides("num_heads", heads, "d_model", d)
    params = 4 * linear_params(d, d) + (4 * d if bias else 0)
    macs = 4 * linear_macs(d, d, n=l) + 2 * l * l * d
    return Cost(params, macs, (l, d), None)


class RelativeSelfAttention2d(nn.Module):
    """BoTNet's multi-head self-attention over the H·W positions of a feature map, with 2D relative
    position encoding (Srinivas et al. 2021, Fig. 4; relative logits of Bello et al. 2019):

        q, k, v = W_Q x, W_K x, W_V x        1x1 convolutions (no bias), split into `heads` heads
        logits(p, p') = q_p·k_p' + q_p·r^h_{i'-i} + q_p·r^w_{j'-j}    for p = (i, j), p' = (i', j')
        out_p = Σ_p' softmax_p'(logits(p, ·)) v_p'       (q scaled by 1/√d_head)

    r^h (2H-1 rows) and r^w (2W-1 rows) are learned embeddings of the relative offsets, shared by
    the heads. As in the paper there is no output projection: the bottleneck's last 1x1 conv mixes
    the heads. The feature-map size is fixed at construction (the embeddings depend on it).
    """

    def __init__(self, channels: int, fmap_size: tuple[int, int], heads: int = 4):
        super().__init__()
        self.channels, self.heads = _positive_int("channels", channels), _positive_int("heads", heads)
        _check_divides("heads", heads, "channels", channels)
        if not isinstance(fmap_size, (tuple, list)) or len(fmap_size) != 2:
            raise TypeError(f"fmap_size must be a pair (H, W), got {fmap_size!r}")
        self.height, self.width = _positive_int("fmap_size[0]", fmap_size[0]), _positive_int("fmap_size[1]", fmap_size[1])
        self.d_head = channels // heads
        self.w_q = nn.Conv2d(channels, channels, 1, bias=False)
        self.w_k = nn.Conv2d(channels, channels, 1, bias=False)
        self.w_v = nn.Conv2d(channels, channels, 1, bias=False)
        scale = self.d_head ** -0.5
        self.rel_height = nn.Parameter(torch.randn(2 * self.height - 1, self.d_head) * scale)  # r^h
        self.rel_width = nn.Parameter(torch.randn(2 * self.width - 1, self.d_head) * scale)  # r^w
        # index[i, i'] = i' - i + (H - 1): the row of r^h for query row i and key row i'
        self.register_buffer("index_h", _relative_index(self.height), persistent=False)
        self.register_buffer("index_w", _relative_index(self.width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W)
        if (h, w) != (self.height, self.width):
            raise ValueError(f"this attention was built for {self.height}x{self.width} feature maps, got {h}x{w}")
        n, d, l = self.heads, self.d_head, h * w
        q = self.w_q(x).reshape(b, n, d, l).transpose(-2, -1) * d ** -0.5  # (B, n, L, d)
        k = self.w_k(x).reshape(b, n, d, l).transpose(-2, -1)  # (B, n, L, d)
        v = self.w_v(x).reshape(b, n, d, l).transpose(-2, -1)  # (B, n, L, d)
        content = q @ k.transpose(-2, -1)  # (B, n, L, L): q_p · k_p'
        q_grid = q.reshape(b, n, h, w, d)  # (B, n, H, W, d)
        r_h = self.rel_height[self.index_h]  # (H, H', d): r^h_{i'-i}
        r_w = self.rel_width[self.index_w]  # (W, W', d): r^w_{j'-j}
        pos_h = torch.einsum("bnhwd,hkd->bnhwk", q_grid, r_h)  # (B, n, H, W, H'): q_p · r^h_{i'-i}
        pos_w = torch.einsum("bnhwd,wkd->bnhwk", q_grid, r_w)  # (B, n, H, W, W'): q_p · r^w_{j'-j}
        position = pos_h.unsqueeze(-1) + pos_w.unsqueeze(-2)  # (B, n, H, W, H', W')
        logits = content + position.reshape(b, n, l, l)  # (B, n, L, L)
        out = logits.softmax(dim=-1) @ v  # (B, n, L, d)
        return out.transpose(-2, -1).reshape(b, c, h, w)  # (B, C, H, W): heads concatenated

    def cost(self, h: int, w: int) -> Cost:
        if (h, w) != (self.height, self.width):
            raise ValueError(f"this attention was built for {self.height}x{self.width} feature maps, got {h}x{w}")
        return relative_self_attention_cost(self.channels, self.heads, h, w)


def _relative_index(size: int) -> torch.Tensor:
    pos = torch.arange(size)
    return pos[None, :] - pos[:, None] + size - 1  # (size, size)


def relative_self_attention_cost(c: int, heads: int, h: int, w: int) -> Cost:
    """BoTNet MHSA over L = h·w positions of c channels (d_head = c / heads):

    params = 3·c² (W_Q, W_K, W_V) + (2h-1 + 2w-1)·d_head (relative embeddings)
    MACs   = 3·L·c² + 2·L²·c (q kᵀ and · v) + L·(h + w)·c (q rᵀ, one product per key row and column)
    """
    c, heads, h, w = _positive_int("c", c), _positive_int("heads", heads), _positive_int("h", h), _positive_int("w", w)
    _check_divides("heads", heads, "channels", c)
    l, d = h * w, c // heads
    params = 3 * pointwise_conv_params(c, c) + (2 * h - 1 + 2 * w - 1) * d
    macs = 3 * pointwise_conv_macs(c, c, h, w) + 2 * l * l * c + l * (h + w) * c
    return Cost(params, macs, (c, h, w), None)


class BoTBlock(nn.Module):
    """Bottleneck Transformer block (Srinivas et al. 2021, "Bottleneck transformers for visual
    recognition", Fig. 3): ResNet's bottleneck with its 3x3 conv replaced by multi-head
    self-attention over the spatial positions (`RelativeSelfAttention2d`, 4 heads as in BoTNet):

        1x1 conv (reduce), BN, ReLU -> MHSA (+ 2x2 average pooling when stride 2), BN, ReLU
        -> 1x1 conv (restore), BN, + shortcut, ReLU

    `fmap_size` is the input's (H, W): attention runs at the input resolution and, at stride 2, is
    followed by 2x2 average pooling with stride 2, as in the paper's first block of c5.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fmap_size: tuple[int, int],
                 heads: int = 4, stride: int = 1):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.mid_channels = _positive_int("mid_channels", mid_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.stride = _check_stride(stride)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.mhsa = RelativeSelfAttention2d(mid_channels, fmap_size, heads)
        self.heads, self.fmap_size = self.mhsa.heads, (self.mhsa.height, self.mhsa.width)
        if stride == 2 and (self.mhsa.height % 2 or self.mhsa.width % 2):
            raise ValueError(f"stride 2 pools 2x2: fmap_size must be even, got {fmap_size}")
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, c_mid, H, W)
        out = self.pool(self.mhsa(out))  # (B, c_mid, H/s, W/s)
        out = self.relu(self.bn2(out))  # (B, c_mid, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, c_out, H/s, W/s)
        return self.relu(out + self.shortcut(x))  # (B, c_out, H/s, W/s)

    def cost(self, h: int, w: int) -> Cost:
        if (h, w) != self.fmap_size:
            raise ValueError(f"this block was built for {self.fmap_size[0]}x{self.fmap_size[1]} inputs, got {h}x{w}")
        return bot_block_cost(self.in_channels, self.mid_channels, self.out_channels, self.heads, self.stride, h, w)


def bot_block_cost(c_i: int, c_mid: int, c_o: int, heads: int, stride: int, h: int, w: int) -> Cost:
    """BoT block: the bottleneck's 1x1 convs and BNs, with the 3x3 conv's cost replaced by
    `relative_self_attention_cost(c_mid, heads, h, w)` (attention at the input resolution)."""
    stride = _check_stride(stride)
    h_o, w_o = h // stride, w // stride
    attention = relative_self_attention_cost(c_mid, heads, h, w)
    params = (
        pointwise_conv_params(c_i, c_mid) + _bn_params(c_mid)
        + attention.params + _bn_params(c_mid)
        + pointwise_conv_params(c_mid, c_o) + _bn_params(c_o)
    )
    macs = pointwise_conv_macs(c_i, c_mid, h, w) + attention.macs + pointwise_conv_macs(c_mid, c_o, h_o, w_o)
    if stride != 1 or c_i != c_o:
        params += pointwise_conv_params(c_i, c_o) + _bn_params(c_o)
        macs += pointwise_conv_macs(c_i, c_o, h_o, w_o)
    return Cost(params, macs, (c_o, h_o, w_o), None)


# --------------------------------------------------------------------------------------------
# NASNet's separable convolution (an operation of the NASNet search space)
# --------------------------------------------------------------------------------------------


class SepConv(nn.Module):
    """NASNet's separable convolution (Zoph et al. 2018, Appendix A: "ReLU - separable conv - BN,
    applied twice"), as in the DARTS code:

        ReLU, k x k depthwise (stride s), 1x1 (c_in -> c_in), BN,
        ReLU, k x k depthwise,            1x1 (c_in -> c_out), BN

    `affine=False` gives BN without learned scale and shift (DARTS's search phase).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, affine: bool = True):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel_size, self.stride, self.affine = _check_kernel(kernel_size), _check_stride(stride), bool(affine)
        c, k, p = in_channels, kernel_size, kernel_size // 2
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c, c, k, stride, p, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(),
            nn.Conv2d(c, c, k, 1, p, groups=c, bias=False),
            nn.Conv2d(c, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)  # (B, c_in, H, W) -> (B, c_in, H/s, W/s) -> (B, c_out, H/s, W/s)

    def cost(self, h: int, w: int) -> Cost:
        return sep_conv_cost(self.in_channels, self.out_channels, self.kernel_size, self.stride, h, w, self.affine)


def sep_conv_cost(c_i: int, c_o: int, k: int, stride: int, h: int, w: int, affine: bool = True) -> Cost:
    """SepConv: two depthwise-separable convs; params c_i·k²·2 + c_i·c_i + c_i·c_o (+ BN 2·(c_i + c_o))."""
    k, stride = _check_kernel(k), _check_stride(stride)
    c_i, c_o = _positive_int("c_i", c_i), _positive_int("c_o", c_o)
    h_o, w_o = _hw_after(k, stride, h, w)
    params = 2 * depthwise_conv_params(c_i, k, k) + pointwise_conv_params(c_i, c_i) + pointwise_conv_params(c_i, c_o)
    if affine:
        params += _bn_params(c_i) + _bn_params(c_o)
    macs = (
        2 * depthwise_conv_macs(c_i, k, k, h_o, w_o)
        + pointwise_conv_macs(c_i, c_i, h_o, w_o)
        + pointwise_conv_macs(c_i, c_o, h_o, w_o)
    )
    a, d, p = c_i * h * w, c_i * h_o * w_o, c_o * h_o * w_o
    peak = max(a + d, d + d, d + p)  # ReLU in place; each conv holds its input and output
    return Cost(params, macs, (c_o, h_o, w_o), peak)
