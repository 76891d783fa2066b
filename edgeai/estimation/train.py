"""Train-from-scratch evaluation: the simplest performance estimation strategy.

Elsken, Metzen & Hutter (2019), "Neural Architecture Search: A Survey", Section 5: "The
simplest option [...] is to perform a standard training and validation of the architecture on
data". It is the ground truth every cheaper estimate (a weight-sharing supernet, a predictor) is
judged against, and the most expensive: one full training per candidate. Section 5's first
family of speed-ups, *lower-fidelity estimates* (fewer epochs, a subset of the data, lower
resolution), is `proxy_accuracy`: a few epochs on a stratified subset, cheap enough to call
hundreds of times in a notebook's search (~0.2 s per small candidate on digits 8x8, one CPU core).

    result = train_and_evaluate(model, digits(), epochs=30, seed=0)
    result.val_accuracy, result.test_accuracy, result.seconds

Reproducibility: everything random happens inside `torch.random.fork_rng` seeded with `seed`
(building the model when a factory is given, dropout, the order of the mini-batches), so the same
seed gives bit-identical weights and numbers on the same machine, and the caller's global RNG
is left as it was. Pass a factory (`lambda: space.build(arch)`) rather than a built model to let
the seed cover the initial weights too.

GPU: the whole dataset is moved to the device once; mini-batches are sliced there
(`edgeai.data.batches`); the step loop never waits for the host (losses are summed on the device
and read once per epoch). bf16 autocast is on by default on CUDA; `channels_last` and
`torch.compile` (`compile=True`, see `compile_model`) on request.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from edgeai.data import Dataset, Split, batches

__all__ = ["TrainResult", "train_and_evaluate", "proxy_accuracy", "evaluate_accuracy", "resolve_device", "num_threads",
           "compile_model"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
DEFAULT_LR = {"sgd": 0.1, "adam": 3e-3, "adamw": 3e-3}  # sgd: tuned on the digits CNNs; adam: the usual default


@dataclass
class TrainResult:
    """What one training run measured."""

    train_loss: list[float]  # mean training loss of each epoch
    val_accuracy: float  # accuracy on the validation split after the last epoch (what a search ranks by)
    test_accuracy: float | None  # accuracy on the test split, None when not asked (a search never looks)
    val_curve: list[float] = field(default_factory=list)  # val accuracy after each epoch, if tracked
    epochs: int = 0  # epochs trained
    steps: int = 0  # optimiser steps taken
    seconds: float = 0.0  # wall-clock time of training and evaluation, model building excluded
    train_samples: int = 0  # size of the training split used


def resolve_device(device: str | torch.device | None) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else must name an available device."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {str(device)!r}")
    return device


@contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Run CPU ops on `threads` threads inside the block, then restore PyTorch's setting (None:
    leave it alone). Tiny models (digits at 8x8) train several times faster on one thread than
    on several threads that wait for each other, and far faster when other processes share the
    cores; to use many cores, run several candidates in parallel processes instead."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compile_model(model: nn.Module, compile: bool | str = True) -> nn.Module:
    """`torch.compile(model)` for the training step, or `model` itself when `compile` is False.

    compile   False: no compilation; True: PyTorch's default backend (inductor: fused GPU kernels,
              worth it for a long run on a static network such as DARTS's supernet or one
              candidate's full training); a backend name (e.g. "aot_eager", "cudagraphs")
              to choose another.

    The compiled module shares the parameters (and buffers) of `model`: optimizers, state dicts
    and checkpoints keep using `model`. The first steps are slow while it compiles (seconds on a
    GPU, minutes with inductor on a small CPU), so a short run gains nothing. Not for networks
    whose structure changes from step to step (a once-for-all supernet's sampled sub-networks,
    ProxylessNAS's binarized paths): every new structure recompiles.
    """
    backend = compile_backend(compile)
    return model if backend is None else torch.compile(model, backend=backend)


def compile_backend(compile: bool | str | None, name: str = "compile") -> str | None:
    """The torch.compile backend `compile` asks for (None: no compilation), or a ValueError
    naming `name` and what is allowed."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return "inductor"
    backends = torch.compiler.list_backends(exclude_tags=())
    if not isinstance(compile, str) or compile not in backends:
        raise ValueError(f"{name} must be False, True or a torch.compile backend ({', '.join(backends)}), "
                         f"got {compile!r}")
    return compile


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def _check_number(name: str, value, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low}, {high}{']' if high != math.inf else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, split: Split, batch_size: int = 1024, autocast: bool = False) -> float:
    """Top-1 accuracy of `model` (in eval mode) on a split that already lies on the model's device."""
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=split.y.device)
    with torch.autocast(split.x.device.type, dtype=torch.bfloat16, enabled=autocast):
        for x, y in batches(split, batch_size):
            correct += (model(x).argmax(dim=1) == y).sum()
    model.train(was_training)
    return correct.item() / len(split)


def train_and_evaluate(
    model: nn.Module | Callable[[], nn.Module],
    data: Dataset,
    epochs: int,
    *,
    seed: int,
    lr: float | None = None,
    batch_size: int = 64,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    label_smoothing: float = 0.0,
    grad_clip: float | None = None,
    device: str | torch.device = "cpu",
    autocast: bool | None = None,
    channels_last: bool = False,
    compile: bool | str = False,
    threads: int | None = None,
    track_val: bool = True,
    test: bool = True,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train `model` from scratch on `data.train` for `epochs` epochs, then measure its accuracy
    on `data.val` (and `data.test` when `test`). The model is trained in place and left on
    `device` in eval mode.

    model           an `nn.Module`, or a factory returning one (then its initial weights are
                    seeded too)
    seed            seeds model building (factory), dropout and the mini-batch order
    lr              peak learning rate; None takes DEFAULT_LR[optimizer]
    batch_size      mini-batch size; the last, smaller batch of an epoch is dropped (BatchNorm)
    optimizer       "sgd" (Nesterov momentum), "adam" or "adamw"
    weight_decay    L2 penalty (decoupled for "adamw")
    schedule        "cosine": lr decays to 0 over all steps (Loshchilov & Hutter, SGDR); "constant"
    label_smoothing passed to the cross-entropy loss (0 = off; Szegedy et al. 2016 use 0.1)
    grad_clip       clip the gradient's global norm to this value (DARTS uses 5); None = off
    device          "cpu", "cuda", "cuda:N" or "auto"; the data is moved there once
    autocast        bf16 autocast; None = on for CUDA, off on CPU
    channels_last   NHWC memory format for model and data (faster convolutions on recent GPUs)
    compile         torch.compile the training step's forward (True, or a backend name; see
                    `compile_model`); evaluation runs the plain model
    threads         CPU threads during this run (None: PyTorch's setting; 1 is fastest for tiny
                    models, see `num_threads`)
    track_val       measure val accuracy after every epoch (`val_curve`); else only at the end
    test            measure test accuracy at the end
    progress        a tqdm bar over epochs
    """
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be an edgeai.data.Dataset (e.g. digits()), got {type(data).__name__}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    lr = DEFAULT_LR[optimizer] if lr is None else _check_number("lr", lr, 0.0, low_open=True)
    momentum = _check_number("momentum", momentum, 0.0, 1.0)
    weight_decay = _check_number("weight_decay", weight_decay, 0.0)
    label_smoothing = _check_number("label_smoothing", label_smoothing, 0.0, 1.0)
    if grad_clip is not None:
        grad_clip = _check_number("grad_clip", grad_clip, 0.0, low_open=True)
    if not (isinstance(model, nn.Module) or callable(model)):
        raise TypeError(f"model must be an nn.Module or a function returning one, got {type(model).__name__}")
    device = resolve_device(device)
    autocast = device.type == "cuda" if autocast is None else bool(autocast)

    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), num_threads(threads):
        torch.manual_seed(seed)
        if not isinstance(model, nn.Module):
            model = model()
            if not isinstance(model, nn.Module):
                raise TypeError(f"the model factory must return an nn.Module, got {type(model).__name__}")
        start = time.perf_counter()
        model.to(device)
        data = data.to(device)
        train, val = data.train, data.val
        if channels_last:
            model.to(memory_format=torch.channels_last)
            train = Split(train.x.contiguous(memory_format=torch.channels_last), train.y)
            val = Split(val.x.contiguous(memory_format=torch.channels_last), val.y)
        batch_size = min(batch_size, len(train))  # a tiny subset still gives one batch per epoch
        steps_per_epoch = len(train) // batch_size
        total_steps = epochs * steps_per_epoch

        step_model = compile_model(model, compile)  # shares model's parameters
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters")
        if optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
        elif optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        order = torch.Generator().manual_seed(seed)  # mini-batch order, carried across epochs

        result = TrainResult(train_loss=[], val_accuracy=float("nan"), test_accuracy=None,
                             train_samples=len(train))
        bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False, unit="epoch")
        for epoch in bar:
            model.train()
            loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step
            for x, y in batches(train, batch_size, rng=order, drop_last=True):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = loss_fn(step_model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                sched.step()
                loss_sum += loss.detach().float()
            result.train_loss.append(loss_sum.item() / steps_per_epoch)
            result.steps += steps_per_epoch
            result.epochs = epoch + 1
            postfix = {"loss": f"{result.train_loss[-1]:.3f}"}
            if track_val:
                result.val_curve.append(evaluate_accuracy(model, val, autocast=autocast))
                postfix["val"] = f"{result.val_curve[-1]:.3f}"
            bar.set_postfix(postfix)
        if not math.isfinite(result.train_loss[-1]):
            raise FloatingPointError(f"training diverged (loss {result.train_loss[-1]}); lower lr (was {lr})")
        result.val_accuracy = result.val_curve[-1] if track_val else evaluate_accuracy(model, val, autocast=autocast)
        if test:
            test_split = data.test
            if channels_last:
                test_split = Split(test_split.x.contiguous(memory_format=torch.channels_last), test_split.y)
            result.test_accuracy = evaluate_accuracy(model, test_split, autocast=autocast)
        model.eval()
        result.seconds = time.perf_counter() - start
    return result


def proxy_accuracy(
    model: nn.Module | Callable[[], nn.Module],
    data: Dataset,
    *,
    seed: int,
    epochs: int = 5,
    train_size: int | None = 512,
    batch_size: int = 32,
    lr: float | None = None,
    optimizer: str = "sgd",
    device: str | torch.device = "cpu",
    threads: int | None = 1,
    channels_last: bool = False,
    compile: bool | str = False,
) -> float:
    """A cheap, lower-fidelity accuracy estimate for search (Elsken et al. 2019, Section 5:
    "training for fewer epochs, on a subset of the data"): train `epochs` epochs on `train_size`
    stratified training samples, return the validation accuracy. The subset and the batch order
    depend on `seed` only, so every candidate of a search sees the same data in the same order and
    differences come from the architectures. NOTE: a proxy ranks architectures, its numbers are
    lower than fully trained accuracies; check its rank correlation with full training.
    `threads=1` by default: the candidates of a notebook search are tiny (see `num_threads`);
    `channels_last=True` trains networks with depthwise convolutions 1.3-2x faster on a CPU.
    """
    if train_size is not None and train_size < len(data.train):
        data = data.with_train_subset(train_size, seed)
    result = train_and_evaluate(
        model, data, epochs, seed=seed, lr=lr, batch_size=batch_size, optimizer=optimizer,
        device=device, threads=threads, channels_last=channels_last, compile=compile, track_val=False, test=False,
        progress=False,
    )
    return result.val_accuracy
