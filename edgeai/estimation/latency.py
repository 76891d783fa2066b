"""Latency: measured on the device, and predicted from a per-operation lookup table.

Hardware-aware NAS needs the latency of thousands of candidates, too many to measure each on
the device. ProxylessNAS (Cai, Zhu & Han 2019, Section 3.3 and Eq. 4) models a network's latency
as the sum of its operations' latencies, each looked up in a table measured once on the target
device:

    E[LAT] = sum_i E[latency of block i],   latency of an op = table[op, input shape]

(the lecture: "F is a latency prediction model, typically a regressor or a lookup table").

    measure_latency(model, x, device)   median and spread of end-to-end latency (ms)
    build_latency_table(candidates)     {op key: median ms} for candidate ops at given input shapes
    table_latency(table, keys)          the table's prediction for a network: the sum of its entries
    check_latency_table(table, layers, x)   the prediction against the measured latency of the
                                        network built from those layers (relative error)

A table is a plain dict keyed by readable op keys (`op_key("conv3x3_16_32", (1, 16, 32, 32))` is
`"conv3x3_16_32@1x16x32x32"`) and is saved as JSON with a description of the device it was
measured on. The sum ignores what happens between operations (framework overhead, cache reuse,
operator fusion), which is why the check against end-to-end latency matters.

Measurement: eval mode, `torch.no_grad`, `warmup` unmeasured calls, then `repeats` timed calls
(each timing `number` back-to-back calls and dividing, for sub-millisecond ops), with
`torch.cuda.synchronize` before and after each timing on CUDA so the clock measures the GPU's
work and not only the kernel launches. On a CPU shared with other processes the samples are
noisy: the median and the inter-quartile range are robust to the occasional slow outlier.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from edgeai.estimation.train import num_threads, resolve_device

__all__ = [
    "Latency",
    "TableCheck",
    "measure_latency",
    "op_key",
    "build_latency_table",
    "save_latency_table",
    "load_latency_table",
    "table_latency",
    "layer_keys",
    "check_latency_table",
    "describe_device",
]

LatencyTable = dict  # op key (str) -> median latency in milliseconds (float)


@dataclass(frozen=True)
class Latency:
    """End-to-end latency of one forward pass, in milliseconds, over `repeats` timed samples."""

    median_ms: float  # the estimate: robust to the occasional slow sample
    iqr_ms: float  # spread: 75th minus 25th percentile
    std_ms: float  # spread: standard deviation (sensitive to outliers)
    min_ms: float  # the fastest sample (closest to the device's undisturbed speed)
    samples_ms: tuple[float, ...]  # every timed sample
    device: str  # where it was measured

    @property
    def repeats(self) -> int:
        return len(self.samples_ms)

    def __str__(self) -> str:
        return f"{self.median_ms:.4g} ms (IQR {self.iqr_ms:.2g}, min {self.min_ms:.4g}, n={self.repeats}, {self.device})"


@dataclass(frozen=True)
class TableCheck:
    """A lookup table's prediction for a network against the network's measured latency."""

    keys: tuple[str, ...]  # the table entries the network is made of, in order
    table_ms: float  # sum of those entries
    measured: Latency  # end-to-end measurement of the whole network
    relative_error: float  # (table_ms - measured.median_ms) / measured.median_ms

    def __str__(self) -> str:
        return (f"lookup table {self.table_ms:.4g} ms vs measured {self.measured.median_ms:.4g} ms "
                f"({len(self.keys)} ops): {100 * self.relative_error:+.1f} %")


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _int_at_least(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _shape(name: str, shape) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, (tuple, list)) or not shape or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape
    ):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, e.g. (1, 16, 32, 32), got {shape!r}")
    return tuple(shape)


def _input(x, device: torch.device) -> torch.Tensor:
    """A tensor is used as is; a shape becomes a fixed standard-normal input of that shape."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    shape = _shape("x", x)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: str | torch.device = "cpu", threads: int | None = None) -> str:
    """A readable name of the device a table was measured on, saved with the table (`threads`:
    the CPU thread count used for the measurement, if it was set; else PyTorch's current one)."""
    device = resolve_device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads() if threads is None else threads
    return f"cpu: {cpu}, {threads} threads of {os.cpu_count()} cores"


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def measure_latency(
    model: nn.Module,
    x: torch.Tensor | Sequence[int],
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    number: int = 1,
    threads: int | None = None,
) -> Latency:
    """Latency of `model(x)` on `device`: `warmup` unmeasured calls, then `repeats` samples, each
    the mean of `number` back-to-back calls. `x` is an input tensor or just its shape.

    The model is moved to `device` (and stays there) and measured in eval mode under
    `torch.no_grad`; its training/eval mode is restored afterwards. `threads` sets PyTorch's
    CPU thread count during the measurement (1 thread is the usual edge-device setting)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    warmup = _int_at_least("warmup", warmup, 0)
    repeats = _int_at_least("repeats", repeats, 1)
    number = _int_at_least("number", number, 1)
    device = resolve_device(device)
    x = _input(x, device)
    model.to(device)
    was_training = model.training
    model.eval()
    samples = []
    try:
        with torch.no_grad(), num_threads(threads):
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                _synchronize(device)
                start = time.perf_counter()
                for _ in range(number):
                    model(x)
                _synchronize(device)
                samples.append(1000.0 * (time.perf_counter() - start) / number)
    finally:
        model.train(was_training)
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else samples * 3
    return Latency(
        median_ms=statistics.median(samples),
        iqr_ms=q3 - q1,
        std_ms=statistics.pstdev(samples),
        min_ms=min(samples),
        samples_ms=tuple(samples),
        device=str(device),
    )


# --------------------------------------------------------------------------------------------
# The lookup table
# --------------------------------------------------------------------------------------------


def op_key(name: str, input_shape: Sequence[int]) -> str:
    """The readable table key of an operation at an input shape: `"sep_conv_3x3@1x16x32x32"`."""
    if not isinstance(name, str) or not name or "@" in name:
        raise ValueError(f"op name must be a non-empty string without '@', got {name!r}")
    return f"{name}@{'x'.join(str(s) for s in _shape('input_shape', input_shape))}"


def build_latency_table(
    candidates: Iterable[tuple[str, nn.Module, Sequence[int]]],
    device: str | torch.device = "cpu",
    warmup: int = 5,
    repeats: int = 20,
    number: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> LatencyTable:
    """Measure every candidate operation on `device` (the one the search targets) at its input
    shape: `candidates` is a list of `(name, module, input_shape)`; the table maps
    `op_key(name, input_shape)` to the median latency in ms."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("candidates is empty: give a list of (name, module, input_shape)")
    keys = []
    for i, candidate in enumerate(candidates):
        if not isinstance(candidate, (tuple, list)) or len(candidate) != 3 or not isinstance(candidate[1], nn.Module):
            raise TypeError(f"candidates[{i}] must be (name, nn.Module, input_shape), got {candidate!r}")
        keys.append(op_key(candidate[0], candidate[2]))
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"candidates repeat the op keys {duplicates}; give each (name, input shape) once")
    table: LatencyTable = {}
    for key, (_, module, shape) in tqdm(list(zip(keys, candidates)), desc="latency table", disable=not progress, leave=False):
        table[key] = measure_latency(module, shape, device, warmup, repeats, number, threads).median_ms
    return table


def save_latency_table(
    table: LatencyTable, path: str | os.PathLike, device: str | torch.device = "cpu", threads: int | None = None
) -> Path:
    """Write the table as JSON, with the device (and CPU threads) it was measured on and the
    torch version."""
    _check_table(table, "table")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"unit": "ms", "device": describe_device(device, threads), "torch": torch.__version__, "entries": table}
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return path


def load_latency_table(path: str | os.PathLike) -> LatencyTable:
    """The `{op key: ms}` table saved by `save_latency_table` (the device description is in the
    file's "device" field)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON latency table: {error}") from error
    if not isinstance(document, dict) or document.get("unit") != "ms" or "entries" not in document:
        raise ValueError(f"{path} is not a latency table (expected a JSON object with unit 'ms' and 'entries')")
    table = document["entries"]
    _check_table(table, str(path))
    return {key: float(value) for key, value in table.items()}


def _check_table(table, where: str) -> None:
    if not isinstance(table, dict):
        raise TypeError(f"{where} must be a dict {{op key: ms}}, got {type(table).__name__}")
    for key, value in table.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: keys must be op-key strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: entry {key!r} must be a non-negative number of ms, got {value!r}")


def table_latency(table: LatencyTable, keys: Iterable[str]) -> float:
    """The lookup-table latency of a network made of the ops `keys` (ms): the sum of their
    entries (ProxylessNAS, Eq. 4, with every block's op fixed)."""
    _check_table(table, "table")
    if isinstance(keys, str):
        raise TypeError("keys must be a list of op keys, not one string")
    keys = list(keys)
    missing = [k for k in keys if k not in table]
    if missing:
        raise KeyError(f"op keys not in the latency table ({len(table)} entries): {missing}; "
                       f"measure them with build_latency_table")
    return float(sum(table[k] for k in keys))


# --------------------------------------------------------------------------------------------
# Checking the table against the whole network
# --------------------------------------------------------------------------------------------


def layer_keys(layers: Sequence[tuple[str, nn.Module]], x: torch.Tensor | Sequence[int]) -> list[str]:
    """The op key of every layer of a sequential network `[(name, module), ...]` at the input
    shape it sees when the network runs on `x` (found with one forward pass on the CPU)."""
    layers = _layers(layers)
    h = _input(x, torch.device("cpu"))
    keys = []
    with torch.no_grad():
        for name, module in layers:
            keys.append(op_key(name, tuple(h.shape)))
            was_training = module.training
            h = module.eval()(h.to(next(module.parameters(), h).device)).cpu()
            module.train(was_training)
    return keys


def _layers(layers) -> list[tuple[str, nn.Module]]:
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty: give a list of (name, nn.Module)")
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) != 2 or not isinstance(layer[1], nn.Module):
            raise TypeError(f"layers[{i}] must be (name, nn.Module), got {layer!r}")
    return layers


def check_latency_table(
    table: LatencyTable,
    layers: Sequence[tuple[str, nn.Module]],
    x: torch.Tensor | Sequence[int],
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    number: int = 1,
    threads: int | None = None,
) -> TableCheck:
    """Compose `layers` into one `nn.Sequential`, measure it end to end on `x`, and compare with
    the sum of the table entries of its layers (at the input shapes they see)."""
    keys = layer_keys(layers, x)
    predicted = table_latency(table, keys)
    network = nn.Sequential(*(module for _, module in _layers(layers)))
    measured = measure_latency(network, x, device, warmup, repeats, number, threads)
    return TableCheck(
        keys=tuple(keys),
        table_ms=predicted,
        measured=measured,
        relative_error=(predicted - measured.median_ms) / measured.median_ms,
    )
