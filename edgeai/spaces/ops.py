"""Candidate operations of cell-level search spaces, as plain registry dicts.

`NASNET_OPS`: the 13 operations of the NASNet search space (Zoph et al. 2018, Section 3; the
lecture's list on "Cell-level Search Space: NASNet"). `DARTS_OPS`: the 8 operations of DARTS
(Liu et al. 2019, Section 3.1 / their `genotypes.PRIMITIVES`). Each entry maps a name to
`make(C, stride, affine) -> nn.Module`, taking C channels to C channels, halving the resolution
when stride is 2 (in a reduction cell), as the original DARTS code's `OPS` dict does.

Layouts follow the DARTS code (`operations.py`), which follows NASNet: ReLU-Conv-BN order, separable
convolutions applied twice, dilated convolutions as depthwise (dilation 2) + pointwise.

NOTE: the lecture's slide lists "1x7 then 3x1 convolution"; the NASNet paper's list has
"1x7 then 7x1 convolution", which is what `conv_1x7_7x1` implements.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from edgeai.blocks import SepConv  # NASNet's separable conv, applied twice (with its analytic cost)

__all__ = [
    "ReLUConvBN",
    "SepConv",
    "DilConv",
    "ConvPair",
    "FactorizedReduce",
    "Identity",
    "Zero",
    "NASNET_OPS",
    "DARTS_OPS",
]


class ReLUConvBN(nn.Sequential):
    """ReLU → k x k convolution → BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU → depthwise k x k convolution with dilation → 1x1 convolution → BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class ConvPair(nn.Sequential):
    """ReLU → 1 x k convolution → k x 1 convolution → BN: a k x k receptive field for 2k weights
    per channel pair instead of k²."""

    def __init__(self, c: int, k: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, k // 2), bias=False),
            nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel: two stride-2 1x1 convolutions, the
    second shifted by one pixel, concatenated (DARTS `FactorizedReduce`)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even c_out, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # (N, C, H, W), shifted by one pixel
        out = torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1)  # (N, c_out, H/2, W/2)
        return self.bn(out)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """DARTS's 'none': the absence of an edge (zeros of the output's shape)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def _identity(c: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(c, c, affine)


def _avg_pool(k: int) -> Callable[[int, int, bool], nn.Module]:
    return lambda c, stride, affine: nn.AvgPool2d(k, stride=stride, padding=k // 2, count_include_pad=False)


def _max_pool(k: int) -> Callable[[int, int, bool], nn.Module]:
    return lambda c, stride, affine: nn.MaxPool2d(k, stride=stride, padding=k // 2)


# Zoph et al. 2018, Section 3: "the following set of operations based on their prevalence in the
# CNN literature" (13 operations; M = 13 in the lecture's search-space size).
NASNET_OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda c, stride, affine: ConvPair(c, 3, stride, affine),
    "conv_1x7_7x1": lambda c, stride, affine: ConvPair(c, 7, stride, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "avg_pool_3x3": _avg_pool(3),
    "max_pool_3x3": _max_pool(3),
    "max_pool_5x5": _max_pool(5),
    "max_pool_7x7": _max_pool(7),
    "conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, affine),
}

# Liu et al. 2019 (DARTS), Section 3.1 and `genotypes.PRIMITIVES`.
DARTS_OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": _max_pool(3),
    "avg_pool_3x3": _avg_pool(3),
    "skip_connect": _identity,
    "sep_conv_3x3": NASNET_OPS["sep_conv_3x3"],
    "sep_conv_5x5": NASNET_OPS["sep_conv_5x5"],
    "dil_conv_3x3": NASNET_OPS["dil_conv_3x3"],
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
}
