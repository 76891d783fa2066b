"""Time the full-size searches' inner loops on whatever device is here (issue 8's benchmark).

1. One DARTS search epoch, first order, with the `darts-cifar10` preset's shapes (8 cells, 16
   initial channels, batch 64) on synthetic CIFAR-shaped data (25,000 images for w and 25,000
   for α, as CIFAR-10's training set split in half): images/s and seconds per epoch.
2. Supernet training steps with the `ofa-evolution-cifar10` preset's space and training settings
   (sandwich rule: largest + smallest + 2 random sub-networks per batch of 256, 32x32 inputs):
   images/s and seconds per epoch of 50,000 images.

    python benchmarks/gpu_search.py [--device auto|cpu|cuda] [--steps 40] [--warmup 5] [--compile]

Only `--steps` timed steps run (after `--warmup` untimed ones); an epoch's time is extrapolated
from them. The paper's figure for comparison: DARTS first order costs 1.5 GPU-days for 4 runs on a
GTX 1080Ti (Liu et al. 2019, Table 1), i.e. about 9 hours per 50-epoch search, ~11 min per epoch.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from edgeai.data import synthetic
from edgeai.estimation.latency import describe_device
from edgeai.estimation.supernet import Supernet, SupernetTrainConfig, _step_archs
from edgeai.estimation.train import resolve_device
from edgeai.presets import PRESETS
from edgeai.runs import network_space
from edgeai.strategies.darts import DartsConfig, DartsSearch
from edgeai.strategies.gradient import split_for_search

CIFAR_TRAIN = 50_000


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_darts(device, steps: int, warmup: int, order: str, compile: bool = False) -> dict:
    settings = dict(PRESETS["darts-cifar10"].strategy_settings, order=order, compile=compile)
    cfg = DartsConfig(**settings)
    n = cfg.batch_size * (steps + warmup) * 2
    data = synthetic(n, (3, 32, 32), 10, seed=0, n_val=cfg.batch_size, n_test=cfg.batch_size).to(device)
    w_half, a_half = split_for_search(data.train, 0.5)
    search = DartsSearch(data.input_shape, data.num_classes, cfg, seed=0, device=device)
    per = cfg.batch_size
    warm = lambda split, k: type(split)(split.x[: k * per], split.y[: k * per])  # noqa: E731
    start = time.perf_counter()
    search.train_epoch(warm(w_half, warmup), warm(a_half, warmup))  # warm-up (cuDNN autotune, allocator, compiler)
    _sync(device)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    metrics = search.train_epoch(type(w_half)(w_half.x[warmup * per:], w_half.y[warmup * per:]),
                                 type(a_half)(a_half.x[warmup * per:], a_half.y[warmup * per:]))
    _sync(device)
    seconds = time.perf_counter() - start
    images = metrics["steps"] * per  # w images (each step also takes an α batch of the same size)
    steps_per_epoch = (CIFAR_TRAIN // 2) // per
    return {"what": f"DARTS search epoch ({order} order, 8 cells, C=16, batch 64{', compiled' if compile else ''})",
            "warmup_seconds": warmup_seconds, "steps_timed": metrics["steps"], "images_per_s": images / seconds,
            "seconds_per_step": seconds / metrics["steps"],
            "seconds_per_epoch": seconds / metrics["steps"] * steps_per_epoch,
            "hours_per_50_epochs": seconds / metrics["steps"] * steps_per_epoch * 50 / 3600}


def bench_supernet(device, steps: int, warmup: int) -> dict:
    preset = PRESETS["ofa-evolution-cifar10"]
    space = network_space(preset, "cifar10")
    cfg = SupernetTrainConfig(seed=0, **preset.train_settings)
    torch.manual_seed(0)
    supernet = Supernet(space).to(device)
    opt = torch.optim.SGD(supernet.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True)
    rng = random.Random(0)
    autocast = device.type == "cuda"
    x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    supernet.to(memory_format=fmt)

    def step():
        opt.zero_grad(set_to_none=True)
        archs = _step_archs(supernet, rng, cfg, ("resolution", "kernel", "depth", "expand", "width"))
        for arch in archs:
            r = arch["resolution"]
            xr = torch.nn.functional.interpolate(x, size=(r, r), mode="bilinear", align_corners=False) if r != 32 else x
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = torch.nn.functional.cross_entropy(supernet(xr.contiguous(memory_format=fmt), arch), y)
            loss.backward()
        opt.step()
        return len(archs)

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    subnets = sum(step() for _ in range(steps))
    _sync(device)
    seconds = time.perf_counter() - start
    return {"what": f"supernet training step (sandwich: {subnets // steps} sub-networks per batch of {cfg.batch_size})",
            "steps_timed": steps, "images_per_s": steps * cfg.batch_size / seconds,
            "seconds_per_step": seconds / steps,
            "seconds_per_epoch": seconds / steps * (CIFAR_TRAIN // cfg.batch_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--order", default="first", choices=("first", "second"))
    parser.add_argument("--compile", action="store_true",
                        help="also time the DARTS epoch with torch.compile (inductor; its warm-up includes compiling)")
    parser.add_argument("--skip-supernet", action="store_true")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    results = [bench_darts(device, args.steps, args.warmup, args.order)]
    if args.compile:
        results.append(bench_darts(device, args.steps, args.warmup, args.order, compile=True))
    if not args.skip_supernet:
        results.append(bench_supernet(device, args.steps, args.warmup))
    for r in results:
        print(f"{r['what']}: {r['images_per_s']:,.0f} images/s, {r['seconds_per_step'] * 1000:.1f} ms/step, "
              f"{r['seconds_per_epoch']:,.0f} s per epoch" +
              (f", {r['hours_per_50_epochs']:.2f} h per 50-epoch search" if "hours_per_50_epochs" in r else "") +
              (f" (warm-up {r['warmup_seconds']:.1f} s)" if "warmup_seconds" in r else ""))
    print("paper (Liu et al. 2019, Table 1): DARTS first order 1.5 GPU-days for 4 runs on a GTX 1080Ti "
          "= ~9 h per search, ~11 min per epoch")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": describe_device(device), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
