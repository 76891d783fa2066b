"""Measure what issue 7 asks of performance estimation, on whatever machine runs it:

1. a small CNN trained from scratch on digits (8x8): test accuracy and training time;
2. the cost of one `proxy_accuracy` call per candidate (several widths and depths);
3. a latency lookup table against the end-to-end latency of networks made of its operations.

    python benchmarks/estimation.py [--device cpu|cuda|auto] [--threads 1] [--rounds 5]

Every timing is repeated `--rounds` times; the minimum (least disturbed by other processes) and
the median are printed. On a machine whose cores are shared, expect noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from edgeai.data import digits
from edgeai.estimation.latency import build_latency_table, check_latency_table, layer_keys, describe_device
from edgeai.estimation.train import proxy_accuracy, resolve_device, train_and_evaluate


def small_cnn(width: int = 16, depth: int = 3, c_in: int = 1) -> nn.Module:
    """`depth` 3x3 conv-BN-ReLU layers (the second strided), global pooling, linear classifier."""
    layers, c = [], c_in
    for i in range(depth):
        c_out = width if i == 0 else 2 * width
        layers += [nn.Conv2d(c, c_out, 3, stride=2 if i == 1 else 1, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        c = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


def conv_layers(resolution: int) -> list[tuple[str, nn.Module]]:
    """A digits-sized network as named operations (the granularity of the lookup table)."""
    def cbr(c_i, c_o, stride):
        return nn.Sequential(nn.Conv2d(c_i, c_o, 3, stride, 1, bias=False), nn.BatchNorm2d(c_o), nn.ReLU())

    return [
        ("cbr3x3_1_16_s1", cbr(1, 16, 1)),
        ("cbr3x3_16_32_s2", cbr(16, 32, 2)),
        ("cbr3x3_32_32_s1", cbr(32, 32, 1)),
        ("cbr3x3_32_64_s2", cbr(32, 64, 2)),
        ("cbr3x3_64_64_s1", cbr(64, 64, 1)),
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc_64_10", nn.Linear(64, 10)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device, args.threads)}; torch {torch.__version__}")

    data = digits(8, seed=0)
    print("\n1. small CNN (3 conv layers, width 16) on digits 8x8, 8 epochs, seed 0")
    runs = [train_and_evaluate(lambda: small_cnn(), data, 8, seed=0, device=device, threads=args.threads, progress=False)
            for _ in range(args.rounds)]
    seconds = [r.seconds for r in runs]
    print(f"   test accuracy {runs[0].test_accuracy:.4f}, val {runs[0].val_accuracy:.4f} "
          f"(identical over rounds: {len({r.test_accuracy for r in runs}) == 1})")
    print(f"   training + evaluation: min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s")

    print("\n2. proxy_accuracy per candidate (5 epochs on 512 stratified samples)")
    for width, depth in [(4, 2), (8, 3), (16, 3), (32, 4)]:
        times, acc = [], None
        for _ in range(args.rounds):
            start = time.perf_counter()
            acc = proxy_accuracy(lambda: small_cnn(width, depth), data, seed=0, device=device, threads=args.threads)
            times.append(time.perf_counter() - start)
        print(f"   width {width:2d}, depth {depth}: val {acc:.3f}, min {min(times):.3f} s, median {statistics.median(times):.3f} s")

    print("\n3. lookup table (sum of per-op medians) vs end-to-end median, batch 1")
    for resolution in (8, 16, 32):
        layers = conv_layers(resolution)
        x = (1, 1, resolution, resolution)
        keys = layer_keys(layers, x)
        candidates = [(k.split("@")[0], m, tuple(int(s) for s in k.split("@")[1].split("x"))) for k, (_, m) in zip(keys, layers)]
        errors, checks = [], []
        for _ in range(args.rounds):
            table = build_latency_table(candidates, device, warmup=20, repeats=200, threads=args.threads, progress=False)
            check = check_latency_table(table, layers, x, device, warmup=20, repeats=200, threads=args.threads)
            errors.append(check.relative_error)
            checks.append(check)
        best = min(checks, key=lambda c: abs(c.relative_error))
        print(f"   {resolution:2d}x{resolution:<2d}: relative error median {100 * statistics.median(errors):+.1f} %, "
              f"range [{100 * min(errors):+.1f}, {100 * max(errors):+.1f}] %; e.g. {best}")


if __name__ == "__main__":
    main()
