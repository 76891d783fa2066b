"""Our MAC counts beside a well-known third-party counter, THOP (ultralytics-thop, a dev
dependency), whose conventions differ from the lecture's in documented ways:

- convolutions and linear layers without bias: THOP counts exactly the lecture's MACs, as we do;
- biases: THOP (2.2) ignores conv and linear biases, like the lecture and us;
- BatchNorm: THOP counts 2 ops per element (normalise) and 2 more when affine (scale, shift),
  i.e. 4·numel; the lecture (and we) count normalization as zero (it folds into the conv);
- ReLU and pooling: THOP counts zero for ReLU, ReLU6 and MaxPool, like us;
- average pooling: THOP counts one add per pooled input element and one divide per output
  element (AdaptiveAvgPool2d: input numel + output numel); we count zero (as for any pooling);
- residual additions (`out + x` in forward, not a module): THOP counts functional calls only
  when they are products (matmul, einsum, F.linear, attention), and we count element-wise ops as
  zero, so they agree.

On real networks (MobileNetV2 and ResNet-50 from edgeai.models) the difference is exactly
4 · (BatchNorm outputs) + (average pool input + output elements), and the parameter counts are
identical.
"""

import pytest
import torch
from torch import nn

from edgeai import models as M
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


# name, resolution, BatchNorm layers, average pool (input, output) elements
REAL_NETWORKS = [
    # stem + t=1 block (2) + 16 inverted residuals (3 each) + last 1x1 conv = 52 BNs; 64 px ends
    # at 2x2: the pool sums 1280·4 inputs into 1280 outputs
    ("mobilenet_v2", 64, 52, (1280 * 2 * 2, 1280)),
    # stem + 16 bottlenecks (3 each) + 4 projection shortcuts = 53 BNs; 32 px ends at 1x1
    ("resnet50", 32, 53, (2048, 2048)),
]


@pytest.mark.parametrize("name, resolution, num_batchnorms, pool", REAL_NETWORKS)
def test_real_networks_differ_by_batchnorm_and_average_pooling_exactly(name, resolution, num_batchnorms, pool):
    # small inputs keep it fast; the rule is per element, so any resolution shows it
    torch.manual_seed(0)
    model = M.MODELS[name]().eval()  # eval: BN on a 1x1 map of one image cannot use batch statistics
    shape = (1, 3, resolution, resolution)
    batchnorm_outputs, pooled = [], []
    hooks = [m.register_forward_hook(lambda m, i, o: batchnorm_outputs.append(o.numel()))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    hooks += [m.register_forward_hook(lambda m, i, o: pooled.append((i[0].numel(), o.numel())))
              for m in model.modules() if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d))]
    with torch.no_grad():
        model(torch.randn(shape))
    for h in hooks:
        h.remove()
    assert len(batchnorm_outputs) == num_batchnorms and pooled == [pool]
    macs, params = thop.profile(model, inputs=(torch.randn(shape),), verbose=False)
    strip_thop(model)
    ours = profile(model, shape)
    # THOP: 4 ops per BN output element (normalise 2, affine 2), one add per pooled input and one
    # divide per pooled output; every convolution and the FC identical (biases ignored by both)
    assert int(macs) - ours.macs == 4 * sum(batchnorm_outputs) + pool[0] + pool[1]
    assert int(params) == ours.params
