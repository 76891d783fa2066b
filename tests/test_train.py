"""edgeai.estimation.train: a small CNN learns digits (> 95 % test accuracy), the same seed gives
bit-identical results, the proxy ranks a network that sees its input above one that cannot (a toy
problem whose answer is known: chance is 10 %), and bad arguments are refused clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeai.data import digits, synthetic
from edgeai.estimation.train import TrainResult, evaluate_accuracy, proxy_accuracy, resolve_device, train_and_evaluate


def small_cnn(width: int = 16) -> nn.Module:
    """Three 3x3 conv-BN-ReLU layers (one strided), global pooling, a linear classifier:
    about 14 k parameters at width 16."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 10),
    )


class Blind(nn.Module):
    """Ignores its input: the best it can do is the most frequent class (~10 % on digits)."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(10))

    def forward(self, x):  # (N, C, H, W) -> (N, 10)
        return self.logits.expand(x.shape[0], 10)


FAST = dict(progress=False, threads=1)  # one thread: tiny models, shared cores (see num_threads)


@pytest.fixture(scope="module")
def data():
    return digits(8, seed=0)


def test_small_cnn_learns_digits_above_95_percent(data):
    # measured on the development machine: test 0.978, val 0.972, ~0.5 s (2 shared cores)
    result = train_and_evaluate(lambda: small_cnn(), data, epochs=8, seed=0, **FAST)
    assert isinstance(result, TrainResult)
    assert result.test_accuracy > 0.95 and result.val_accuracy > 0.95
    assert result.epochs == 8 and len(result.train_loss) == 8 and len(result.val_curve) == 8
    assert result.steps == 8 * (1078 // 64) and result.train_samples == 1078
    assert result.train_loss[-1] < result.train_loss[0] / 4
    assert result.val_curve[-1] == result.val_accuracy and result.seconds > 0


def test_same_seed_gives_bit_identical_results(data):
    before = torch.get_rng_state()
    runs = []
    for seed in (3, 3, 4):
        # dropout draws random numbers too
        result = train_and_evaluate(lambda: nn.Sequential(small_cnn(4), nn.Dropout(0.2)), data, 2, seed=seed, **FAST)
        runs.append(result)
    assert runs[0].train_loss == runs[1].train_loss and runs[0].val_accuracy == runs[1].val_accuracy
    assert runs[0].test_accuracy == runs[1].test_accuracy
    assert runs[0].train_loss != runs[2].train_loss
    assert torch.equal(torch.get_rng_state(), before)  # the caller's global RNG is left alone


def test_trained_weights_are_identical_for_a_given_module(data):
    def train(seed):
        torch.manual_seed(0)  # the caller's own initialisation
        model = small_cnn(4)
        train_and_evaluate(model, data, 1, seed=seed, **FAST)
        return model

    a, b = train(1), train(1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not a.training  # left in eval mode
    c = train(2)  # same initial weights, other batch order
    assert not torch.equal(a[0].weight, c[0].weight)


def test_evaluate_accuracy_against_a_hand_count():
    model = nn.Flatten()  # logits are the 4 input values: the prediction is the argmax position
    x = torch.tensor([[1.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 0, 2.0], [3.0, 0, 0, 0]]).reshape(4, 1, 2, 2)
    from edgeai.data import Split

    split = Split(x, torch.tensor([0, 1, 2, 3]))  # right, right, wrong (3 != 2), wrong (0 != 3)
    assert evaluate_accuracy(model, split, batch_size=3) == 0.5


def test_easy_synthetic_problem_is_learned_exactly():
    easy = synthetic(256, (1, 4, 4), num_classes=3, seed=0, noise=0.1)
    linear = lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    result = train_and_evaluate(linear, easy, 5, seed=0, batch_size=32, **FAST, label_smoothing=0.1, grad_clip=5.0)
    assert result.val_accuracy == 1.0 and result.test_accuracy == 1.0
    no_test = train_and_evaluate(linear, easy, 1, seed=0, test=False, track_val=False, **FAST, optimizer="adamw")
    assert no_test.test_accuracy is None and no_test.val_curve == [] and 0 <= no_test.val_accuracy <= 1


def test_autocast_and_channels_last_run_on_cpu(data):
    result = train_and_evaluate(lambda: small_cnn(4), data, 1, seed=0, autocast=True, channels_last=True,
                                **FAST, optimizer="adam", schedule="constant")
    assert 0 <= result.test_accuracy <= 1 and len(result.train_loss) == 1


def test_compiled_training_takes_the_same_steps(data):
    """`compile=` runs the training step through torch.compile ("aot_eager": TorchDynamo and
    AOTAutograd, inductor's graphs without its code generation, which takes minutes on a small
    CPU); the weights after an epoch equal the eager run's up to float reassociation, and the
    module the caller holds is the one trained."""
    small = data.with_train_subset(256, seed=0)
    models = [small_cnn(4) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    initial = models[1][0].weight.detach().clone()
    plain, compiled = (train_and_evaluate(m, small, 1, seed=0, batch_size=64, compile=c, test=False, **FAST)
                       for m, c in zip(models, (False, "aot_eager")))
    assert compiled.train_loss == pytest.approx(plain.train_loss, rel=1e-5)
    assert compiled.val_accuracy == plain.val_accuracy
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)
    assert not torch.equal(models[1][0].weight, initial)  # the caller's module was trained
    with pytest.raises(ValueError, match="compile must be False, True or a torch.compile backend"):
        train_and_evaluate(small_cnn(4), small, 1, seed=0, compile="fastest", **FAST)


def test_proxy_is_seeded_and_ranks_seeing_above_blind(data):
    seeing = proxy_accuracy(lambda: small_cnn(16), data, seed=0)
    assert seeing == proxy_accuracy(lambda: small_cnn(16), data, seed=0)
    blind = proxy_accuracy(Blind, data, seed=0)
    assert blind < 0.2  # at best the most frequent class of the validation split (~10 %)
    assert seeing > 0.8 > blind


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(epochs=0), ValueError, "epochs"),
        (dict(epochs=1.5), TypeError, "epochs"),
        (dict(batch_size=-1), ValueError, "batch_size"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of"),
        (dict(schedule="step"), ValueError, "schedule"),
        (dict(label_smoothing=1.5), ValueError, "label_smoothing"),
        (dict(momentum=-0.1), ValueError, "momentum"),
        (dict(seed="0"), TypeError, "seed"),
        (dict(device="tpu"), ValueError, "device"),
        (dict(model=42), TypeError, "model must be"),
        (dict(model=lambda: 42), TypeError, "factory must return"),
        (dict(data=[1, 2, 3]), TypeError, "edgeai.data.Dataset"),
    ],
)
def test_bad_arguments(data, kwargs, error, words):
    arguments = dict(model=lambda: small_cnn(4), data=data, epochs=1, seed=0, **FAST)
    arguments.update(kwargs)
    with pytest.raises(error, match=words):
        train_and_evaluate(**arguments)


def test_divergence_is_reported(data):
    with pytest.raises(FloatingPointError, match="lower lr"):
        train_and_evaluate(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), data, 1, seed=0, lr=1e30,
                           momentum=0.0, **FAST)
