"""Our MAC counts beside a well-known third-party counter, THOP (ultralytics-thop, a dev
dependency), whose conventions differ from the lecture's in documented ways:

- convolutions and linear layers without bias: THOP counts exactly the lecture's MACs, as we do;
- biases: THOP (2.2) ignores conv and linear biases, like the lecture and us;
- BatchNorm: THOP counts 2 ops per element (normalise) and 2 more when affine (scale, shift),
  i.e. 4·numel; the lecture (and we) count normalization as zero (it folds into the conv);
- ReLU and pooling: THOP counts zero for ReLU and for MaxPool by default, like us.
"""

import pytest
import torch
from torch import nn

from edgeai.efficiency import profile

thop = pytest.importorskip("thop")


def thop_macs(model, shape):
    macs, _params = thop.profile(model, inputs=(torch.randn(shape),), verbose=False)
    return int(macs)


def strip_thop(model):
    # thop registers total_ops/total_params buffers on every module; remove them so later uses
    # of the model (and our own profile) see the plain model
    for m in model.modules():
        for name in ("total_ops", "total_params"):
            if name in m._buffers:
                del m._buffers[name]


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(),
                               nn.Conv2d(16, 16, 3, groups=16, padding=1, bias=False),
                               nn.Conv2d(16, 32, 1, bias=False), nn.Flatten(), nn.Linear(32 * 64, 10, bias=False)),
         (1, 3, 8, 8)),
        (lambda: nn.Sequential(nn.Conv2d(8, 24, 5, stride=2, groups=4, bias=False), nn.MaxPool2d(2),
                               nn.Flatten(), nn.Linear(24 * 5 * 5, 7, bias=False)),
         (1, 8, 23, 23)),
    ],
)
def test_bias_free_conv_and_linear_agree_exactly(make, shape):
    model = make()
    theirs = thop_macs(model, shape)
    strip_thop(model)
    assert profile(model, shape).macs == theirs


def test_the_difference_is_batchnorm_only():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 10, bias=True))
    theirs = thop_macs(model, (1, 3, 8, 8))
    strip_thop(model)
    ours = profile(model, (1, 3, 8, 8)).macs
    conv_out = 8 * 6 * 6
    batchnorm = 4 * conv_out  # THOP: 2 ops per element to normalise, 2 for the affine transform
    assert theirs - ours == batchnorm
