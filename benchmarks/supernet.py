"""Measure what issue 7 asks of weight sharing and predictors, on whatever machine runs it:

1. digits accuracy of candidates trained from scratch against the same candidates evaluated in a
   once-for-all supernet (no retraining, BN recalibrated), and their rank agreement (Kendall tau),
   for the sandwich rule and for uniform sampling;
2. the accuracy predictor (MLP on the encoding) trained on supernet-evaluated pairs: Kendall tau
   on held-out pairs, and against the from-scratch accuracies;
3. the latency lookup table of the space against the end-to-end latency of whole networks.

    python benchmarks/supernet.py [--device cpu|cuda|auto] [--threads 1] [--epochs 20] [--quick]

The space is notebook 08's: digits at 8 or 24 px, width 0.5-1, kernel 3/5, expand 2/4/6, depth 1-2.
From-scratch training runs at 8 px only (24-px candidates cost nine times more on a CPU).
Timings on a machine whose cores are shared are noisy; CPU seconds are printed beside wall time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from edgeai.data import digits
from edgeai.estimation.latency import describe_device
from edgeai.estimation.predictors import (AccuracyPredictor, LatencyPredictor, PredictorConfig, kendall_tau,
                                          network_latency_table, split_pairs)
from edgeai.estimation.supernet import Supernet, SupernetTrainConfig, train_supernet
from edgeai.estimation.train import resolve_device, train_and_evaluate
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig

SPACE_CONFIG = NetworkSpaceConfig.digits(resolutions=(8, 24), widths=(0.5, 0.75, 1.0), kernels=(3, 5),
                                         expand_ratios=(2, 4, 6), depths=(1, 2))


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self):
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20, help="supernet epochs")
    parser.add_argument("--scratch-epochs", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=8, help="trained from scratch at 8 px")
    parser.add_argument("--pairs", type=int, default=100, help="supernet-evaluated pairs for the predictor")
    parser.add_argument("--rules", default="uniform,sandwich", help="supernet training rules to compare")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of one candidate: the noise of the truth itself")
    parser.add_argument("--quick", action="store_true", help="a few epochs and candidates: checks the script runs")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.scratch_epochs, args.candidates, args.pairs, args.seeds = 1, 1, 3, 12, 2
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    print(f"device: {describe_device(device, args.threads)}; torch {torch.__version__}")
    space = NetworkSpace(SPACE_CONFIG)
    data = {r: digits(r, seed=0).to(device) for r in SPACE_CONFIG.resolutions}

    rng = random.Random(1)
    smallest = {name: min(options) for name, options in space.decisions()}
    largest = {name: max(options) for name, options in space.decisions()}
    candidates = [dict(a, resolution=8) for a in [smallest, *(space.sample(rng) for _ in range(args.candidates - 2)),
                                                  largest]]

    def scratch_accuracy(arch, seed):
        return train_and_evaluate(lambda: space.build(arch), data[8], args.scratch_epochs, seed=seed, batch_size=32,
                                  device=device, threads=args.threads, progress=False, track_val=False).test_accuracy

    print(f"\n1. {len(candidates)} candidates at 8 px (the smallest, random ones, the largest) trained from scratch, "
          f"{args.scratch_epochs} epochs, seed 0")
    with Clock() as clock:
        scratch = [scratch_accuracy(a, 0) for a in candidates]
    print(f"   test accuracy {min(scratch):.3f} .. {max(scratch):.3f} (mean {statistics.mean(scratch):.3f}); {clock}")
    noise = [scratch[1]] + [scratch_accuracy(candidates[1], seed) for seed in range(1, args.seeds)]
    print(f"   the truth's own noise: candidate 1 with seeds 0..{args.seeds - 1}: {[round(a, 3) for a in noise]}, "
          f"std {statistics.stdev(noise):.4f} ({len(data[8].test)} test images: one image = {1 / len(data[8].test):.4f})")

    for rule in args.rules.split(","):
        torch.manual_seed(0)
        supernet = Supernet(space)
        config = SupernetTrainConfig(rule=rule, epochs=args.epochs, batch_size=32, num_random=2, lr=0.1, seed=0,
                                     label_smoothing=0.0 if rule == "uniform" else 0.1)
        with Clock() as clock:
            history = train_supernet(supernet, data, config, device=device, threads=args.threads,
                                     channels_last=device.type == "cpu", progress=False)
        print(f"\n   supernet, {rule} rule, {args.epochs} epochs ({history.steps} steps, {history.subnets} "
              f"sub-network passes): {clock}; last loss {history.losses[-1]:.3f}")
        with Clock() as clock:
            shared = [supernet.evaluate(a, data, split="test", calibration_samples=256, threads=args.threads,
                                        channels_last=device.type == "cpu") for a in candidates]
        print(f"   supernet-evaluated test accuracy {min(shared):.3f} .. {max(shared):.3f} "
              f"(mean {statistics.mean(shared):.3f}); {clock}")
        print(f"   Kendall tau (supernet vs scratch) = {kendall_tau(shared, scratch):.3f}")
        for s, w in zip(scratch, shared):
            print(f"     scratch {s:.3f}  supernet {w:.3f}")

        print(f"\n2. accuracy predictor on {args.pairs} supernet-evaluated pairs ({rule} supernet), 25 % held out")
        prng = random.Random(2)
        pool = [space.sample(prng) for _ in range(args.pairs)]
        with Clock() as clock:
            pool_acc = [supernet.evaluate(a, data, calibration_samples=256, threads=args.threads,
                                          channels_last=device.type == "cpu") for a in pool]
        print(f"   pairs: {clock}")
        train_a, train_y, test_a, test_y = split_pairs(pool, pool_acc, held_out=0.25, seed=0)
        predictor = AccuracyPredictor(space, PredictorConfig(epochs=500, seed=0)).fit(train_a, train_y)
        print(f"   Kendall tau on {len(test_a)} held-out pairs = {predictor.kendall_tau(test_a, test_y):.3f}; "
              f"against the from-scratch candidates = {kendall_tau(predictor.predict(candidates), scratch):.3f}")

    print("\n3. lookup table (batch 1) against whole networks measured end to end")
    with Clock() as clock:
        table = network_latency_table(space, device=device, warmup=5, repeats=30, threads=args.threads, progress=False)
    print(f"   {len(table)} layers measured: {clock}")
    latency = LatencyPredictor(table, space)
    lrng = random.Random(3)
    errors_median, errors_min = [], []
    for _ in range(10 if not args.quick else 2):
        arch = space.sample(lrng)
        check = latency.check(arch, device=device, warmup=10, repeats=100, threads=args.threads)
        errors_median.append(check.relative_error)
        errors_min.append((check.table_ms - check.measured.min_ms) / check.measured.min_ms)
        print(f"   {arch['resolution']:2d} px: {check}; against the fastest run {100 * errors_min[-1]:+.1f} %")
    print(f"   relative error against the median: median {100 * statistics.median(errors_median):+.1f} %, "
          f"mean |error| {100 * statistics.mean(map(abs, errors_median)):.1f} %; against the fastest run: "
          f"median {100 * statistics.median(errors_min):+.1f} %, mean |error| {100 * statistics.mean(map(abs, errors_min)):.1f} %")


if __name__ == "__main__":
    main()
