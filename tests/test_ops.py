"""The cell-level operation registries: the papers' lists, shapes, and parameter counts."""

import pytest
import torch

from edgeai.efficiency import profile
from edgeai.spaces.ops import DARTS_OPS, NASNET_OPS

# Zoph et al. 2018, Section 3: the 13 operations (M = 13 in the lecture's (2·2·M·M·N)^B)
NASNET_NAMES = {"identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
                "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5",
                "sep_conv_7x7"}
# Liu et al. 2019, genotypes.PRIMITIVES
DARTS_NAMES = {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
               "dil_conv_3x3", "dil_conv_5x5"}


def test_the_papers_lists():
    assert set(NASNET_OPS) == NASNET_NAMES and len(NASNET_OPS) == 13
    assert set(DARTS_OPS) == DARTS_NAMES and len(DARTS_OPS) == 8


@pytest.mark.parametrize("name", sorted(NASNET_NAMES | DARTS_NAMES))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_applies_the_stride(name, stride):
    make = NASNET_OPS.get(name) or DARTS_OPS[name]
    y = make(8, stride, True)(torch.randn(2, 8, 12, 12))
    assert y.shape == (2, 8, 12 // stride, 12 // stride)


@pytest.mark.parametrize(
    "name, params",
    [
        # C = 16, BN affine adds 2·C per BN
        ("conv_1x1", 16 * 16 + 32),
        ("conv_3x3", 16 * 16 * 9 + 32),
        ("conv_1x3_3x1", 2 * 16 * 16 * 3 + 32),
        ("conv_1x7_7x1", 2 * 16 * 16 * 7 + 32),
        ("dil_conv_3x3", 16 * 9 + 16 * 16 + 32),
        ("sep_conv_3x3", 2 * (16 * 9 + 16 * 16 + 32)),  # applied twice
        ("sep_conv_5x5", 2 * (16 * 25 + 16 * 16 + 32)),
        ("sep_conv_7x7", 2 * (16 * 49 + 16 * 16 + 32)),
        ("max_pool_5x5", 0),
        ("identity", 0),
    ],
)
def test_parameter_counts(name, params):
    assert profile(NASNET_OPS[name](16, 1, True), (1, 16, 8, 8)).params == params


def test_darts_dilated_5x5_has_a_9x9_receptive_field():
    op = DARTS_OPS["dil_conv_5x5"](4, 1, True)
    x = (torch.rand(1, 4, 21, 21) + 0.1).requires_grad_()  # positive: ReLU passes gradients
    op.eval()
    op(x)[0, :, 10, 10].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    assert rows.min().item() == 6 and rows.max().item() == 14  # 10 ± 2·(5-1)/2
