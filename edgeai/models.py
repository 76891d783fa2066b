"""Whole networks written as the papers' tables, built only from `edgeai.blocks`.

    resnet50()            He et al. 2016, Table 1 (50-layer column)
    resnext50_32x4d()     Xie et al. 2017, Table 1
    mobilenet_v1()        Howard et al. 2017, Table 1 (width multiplier α)
    mobilenet_v2()        Sandler et al. 2018, Table 2 (width multiplier)
    shufflenet_v1()       Zhang et al. 2018, Table 1 (groups g, width s)

Each network is an `nn.Sequential` of named parts (stem, one stage per table row, head), so
`profile(model, (1, 3, 224, 224))` reports layers like "conv3_x.0.conv2" that can be found in the
paper's table. The layer layout is the standard one (torchvision's, and Megvii's for ShuffleNet),
so sizes and costs match the published numbers; where a paper and the standard layout differ, the
builder's docstring says so. `network_cost(model, resolution)` adds up the blocks' analytic costs
(`edgeai.blocks`) without running the model; it equals what `profile` measures.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from edgeai.blocks import (
    Bottleneck,
    ClassifierHead,
    ConvBNAct,
    Cost,
    DepthwiseSeparable,
    InvertedResidual,
    ResNeXtBlock,
    ShuffleUnit,
    max_pool_cost,
)
from edgeai.efficiency import _positive_int

__all__ = [
    "RESNET50",
    "RESNEXT50_32X4D",
    "MOBILENET_V1",
    "MOBILENET_V2",
    "SHUFFLENET_V1_CHANNELS",
    "SHUFFLENET_V1_REPEATS",
    "make_divisible",
    "resnet50",
    "resnext50_32x4d",
    "mobilenet_v1",
    "mobilenet_v2",
    "shufflenet_v1",
    "MODELS",
    "network_cost",
]

# --------------------------------------------------------------------------------------------
# The papers' tables
# --------------------------------------------------------------------------------------------

RESNET50 = [  # c_mid (1x1, 3x3), c_out (last 1x1), n, s   (He et al. 2016, Table 1, 50-layer)
    (64, 256, 3, 1),  # conv2_x   56x56
    (128, 512, 4, 2),  # conv3_x  28x28
    (256, 1024, 6, 2),  # conv4_x 14x14
    (512, 2048, 3, 2),  # conv5_x  7x7
]

RESNEXT50_32X4D = [  # width (1x1, 3x3), C, c_out, n, s   (Xie et al. 2017, Table 1, ResNeXt-50 32x4d)
    (128, 32, 256, 3, 1),  # conv2   56x56   d = 128/32 = 4
    (256, 32, 512, 4, 2),  # conv3   28x28   d = 8
    (512, 32, 1024, 6, 2),  # conv4  14x14   d = 16
    (1024, 32, 2048, 3, 2),  # conv5  7x7    d = 32
]

MOBILENET_V1 = [  # c, s   one depthwise-separable block per row   (Howard et al. 2017, Table 1)
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),  # "5x" in the table
    (1024, 2),
    (1024, 1),  # NOTE: Table 1 prints s2 here, but its 7x7 input and 7x7 output mean stride 1
]

MOBILENET_V2 = [  # t, c, n, s   (Sandler et al. 2018, Table 2)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]

SHUFFLENET_V1_CHANNELS = {  # g: output channels of Stage2, Stage3, Stage4   (Zhang et al. 2018, Table 1)
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
SHUFFLENET_V1_REPEATS = [  # stage, units (the first with stride 2)   (Zhang et al. 2018, Table 1)
    ("stage2", 4),  # 28x28
    ("stage3", 8),  # 14x14
    ("stage4", 4),  # 7x7
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to the nearest multiple of `divisor`, never more than 10% down
    (the rounding of MobileNet's and torchvision's width multipliers)."""
    divisor = _positive_int("divisor", divisor)
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _check_width(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# ResNet-50 and ResNeXt-50
# --------------------------------------------------------------------------------------------


def _resnet_stem() -> list[tuple[str, nn.Module]]:
    """conv1: 7x7, 64, stride 2; then 3x3 max pool, stride 2 (He et al., Table 1)."""
    return [("conv1", ConvBNAct(3, 64, 7, 2)), ("pool", nn.MaxPool2d(3, 2, 1))]


def resnet50(num_classes: int = 1000) -> nn.Sequential:
    """ResNet-50 (He et al. 2016, Table 1) in the standard (torchvision) layout.

    NOTE: the stride of conv3_1, conv4_1 and conv5_1 sits on the 3x3 conv ("ResNet v1.5", as in
    torchvision and fb.resnet.torch that Xie et al. compare against); the original puts it on the
    first 1x1 conv. Same parameters; 4.1 instead of 3.8 GMACs at 224x224.
    """
    layers = _resnet_stem()
    c_in = 64
    for i, (c_mid, c_out, n, s) in enumerate(RESNET50):
        blocks = []
        for j in range(n):
            blocks.append(Bottleneck(c_in, c_mid, c_out, stride=s if j == 0 else 1))
            c_in = c_out
        layers.append((f"conv{i + 2}_x", nn.Sequential(*blocks)))
    layers.append(("head", ClassifierHead(c_in, num_classes)))
    return nn.Sequential(OrderedDict(layers))


def resnext50_32x4d(num_classes: int = 1000) -> nn.Sequential:
    """ResNeXt-50 (32x4d) (Xie et al. 2017, Table 1): ResNet-50 with form (c) ResNeXt blocks,
    cardinality C = 32 and bottleneck width d = 4 in the first stage (doubling each stage)."""
    layers = _resnet_stem()
    c_in = 64
    for i, (width, cardinality, c_out, n, s) in enumerate(RESNEXT50_32X4D):
        blocks = []
        for j in range(n):
            blocks.append(ResNeXtBlock(c_in, c_out, cardinality, width // cardinality, stride=s if j == 0 else 1))
            c_in = c_out
        layers.append((f"conv{i + 2}", nn.Sequential(*blocks)))
    layers.append(("head", ClassifierHead(c_in, num_classes)))
    return nn.Sequential(OrderedDict(layers))


# --------------------------------------------------------------------------------------------
# MobileNetV1 and MobileNetV2
# --------------------------------------------------------------------------------------------


def mobilenet_v1(width_mult: float = 1.0, num_classes: int = 1000) -> nn.Sequential:
    """MobileNetV1 (Howard et al. 2017, Table 1): a 3x3 conv (32, stride 2), 13 depthwise-separable
    blocks, average pooling and a fully-connected layer. The width multiplier α scales every layer's
    channels (rounded to multiples of 8, which is exact for the paper's α = 1, 0.75, 0.5, 0.25)."""
    alpha = _check_width("width_mult", width_mult)
    c_in = make_divisible(32 * alpha)
    layers = [("conv1", ConvBNAct(3, c_in, 3, 2))]
    for i, (c, s) in enumerate(MOBILENET_V1):
        c_out = make_divisible(c * alpha)
        layers.append((f"dw{i + 1}", DepthwiseSeparable(c_in, c_out, stride=s)))
        c_in = c_out
    layers.append(("head", ClassifierHead(c_in, num_classes)))
    return nn.Sequential(OrderedDict(layers))


def mobilenet_v2(width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> nn.Sequential:
    """MobileNetV2 (Sandler et al. 2018, Table 2): a 3x3 conv (32, stride 2), the inverted residual
    rows `t, c, n, s` (the first block of a row has stride s, the others 1), a 1x1 conv to 1280,
    pooling, dropout and the classifier. The width multiplier scales every layer but the last 1x1
    conv (which only grows), rounded to multiples of 8, as in the paper and torchvision."""
    width = _check_width("width_mult", width_mult)
    c_in = make_divisible(32 * width)
    layers = [("conv1", ConvBNAct(3, c_in, 3, 2, activation="relu6"))]
    for i, (t, c, n, s) in enumerate(MOBILENET_V2):
        c_out = make_divisible(c * width)
        blocks = []
        for j in range(n):
            blocks.append(InvertedResidual(c_in, c_out, stride=s if j == 0 else 1, expand_ratio=t))
            c_in = c_out
        layers.append((f"bottleneck{i + 1}", nn.Sequential(*blocks)))
    c_last = make_divisible(1280 * max(1.0, width))
    layers.append(("conv2", ConvBNAct(c_in, c_last, 1, activation="relu6")))
    layers.append(("head", ClassifierHead(c_last, num_classes, dropout)))
    return nn.Sequential(OrderedDict(layers))


# --------------------------------------------------------------------------------------------
# ShuffleNet
# --------------------------------------------------------------------------------------------


def shufflenet_v1(groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000) -> nn.Sequential:
    """ShuffleNet 1x (Zhang et al. 2018, Table 1) with g groups, scaled by s = `width_mult`
    ("ShuffleNet s x"): conv1 3x3 (24, stride 2), 3x3 max pool, Stage2-4 of ShuffleNet units (the
    first of each with stride 2), global pooling, FC. The first 1x1 conv of Stage2 is not grouped
    (its input has only 24 channels), as in the paper.

    Scaled widths round the stage channels to multiples of 4·g (bottleneck = c/4 must split into g
    groups) and conv1 to a multiple of lcm(4, g). This gives Megvii's official widths at s = 0.5,
    1 and 2; NOTE: Megvii's 1.5x keeps conv1 at 24 channels where this rule gives 36 (their
    292M MACs for g = 3 against 300M here).
    """
    groups = _positive_int("groups", groups)
    if groups not in SHUFFLENET_V1_CHANNELS:
        raise ValueError(f"groups must be one of {sorted(SHUFFLENET_V1_CHANNELS)} (Table 1), got {groups}")
    s = _check_width("width_mult", width_mult)
    c_in = make_divisible(24 * s, math.lcm(4, groups))
    layers = [("conv1", ConvBNAct(3, c_in, 3, 2)), ("pool", nn.MaxPool2d(3, 2, 1))]
    for (name, n), c in zip(SHUFFLENET_V1_REPEATS, SHUFFLENET_V1_CHANNELS[groups]):
        c_out = make_divisible(c * s, 4 * groups)
        units = []
        for j in range(n):
            first = j == 0
            grouped_first = not (first and name == "stage2")
            units.append(ShuffleUnit(c_in, c_out, groups, stride=2 if first else 1, grouped_first=grouped_first))
            c_in = c_out
        layers.append((name, nn.Sequential(*units)))
    layers.append(("head", ClassifierHead(c_in, num_classes)))
    return nn.Sequential(OrderedDict(layers))


MODELS = {  # name: builder (a plain registry)
    "resnet50": resnet50,
    "resnext50_32x4d": resnext50_32x4d,
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "shufflenet_v1": shufflenet_v1,
}


# --------------------------------------------------------------------------------------------
# Analytic cost of a whole network
# --------------------------------------------------------------------------------------------


def network_cost(model: nn.Module, resolution: int | tuple[int, int] = 224, in_channels: int = 3) -> Cost:
    """#params, MACs and peak activations of a network of this module, computed from its blocks'
    analytic costs (`block.cost(h, w)`) without running it: a chain of blocks costs the sum of
    their params and MACs, and its peak is the largest block peak (`Cost.then`).

    `model` is a block, or an `nn.Sequential` of blocks, max-pooling layers and nested
    `nn.Sequential`s (every network of this module). Input: one in_channels x H x W image, with
    (H, W) = resolution (an int for square images).
    """
    h, w = (resolution, resolution) if not isinstance(resolution, (tuple, list)) else resolution
    h, w, c = _positive_int("resolution", h), _positive_int("resolution", w), _positive_int("in_channels", in_channels)
    start = Cost(0, 0, (c, h, w), c * h * w)  # the input image is held from the start
    return _chain_cost(model, start)


def _chain_cost(module: nn.Module, cost: Cost) -> Cost:
    c, h, w = cost.out_shape
    if hasattr(module, "cost"):
        return cost.then(module.cost(h, w))
    if isinstance(module, nn.MaxPool2d):
        k, s, p = (module.kernel_size, module.stride, module.padding)
        return cost.then(max_pool_cost(c, h, w, k, s, p))
    if type(module) is nn.Sequential:
        for child in module:
            cost = _chain_cost(child, cost)
        return cost
    raise TypeError(f"network_cost does not know the cost of {type(module).__name__}")
