"""Beyond one process on this machine (issue 10's benchmark): the speed-up of

(a) candidate evaluation with 1 vs 2 Ray workers: a random search over the digits network space
    whose candidates are trained by the course's proxy (`proxy_accuracy`: 3 epochs on 192
    images, one thread each, as the `random-digits` preset), timed after Ray and its workers
    have started; also checks that the histories are the same;
(b) a supernet epoch with 1 vs 2 DDP processes (torchrun, gloo on the CPU): the
    `ofa-evolution-digits` preset's supernet and training settings (uniform rule, 2 sub-networks
    per step, global batch 64) over the whole digits training split, one thread per process; and
    one process with 2 threads for comparison. `--device cuda`: the same epoch on one GPU (the
    single-GPU throughput of the same run) and, on a machine with N >= 2 GPUs, with N DDP
    processes, one per GPU, over NCCL (what `torchrun --nproc-per-node N -m edgeai search ...`
    does); the library's CUDA defaults (bf16 autocast).

    python benchmarks/distributed.py [--candidates 8] [--repeats 2] [--skip-ray] [--skip-ddp] [--device cpu|cuda]

Each figure is the minimum over `--repeats` runs (the machine may be shared). (a) always trains
its candidates on the CPU (the course's digits candidates: one thread each).

Measured on the course's 2-core CPU machine (shared with other work; best of two runs of
`--repeats 2`, torch 2.13 CPU, Ray 2.60, no GPU):
    (a) 8 candidates: in-process 12.0 s, 1 Ray worker 11.9 s, 2 Ray workers 6.2 s: 1.93x
        (same history in all three)
    (b) one supernet epoch (16 steps of 64 images): 1 process / 1 thread 2.99 s, 2 DDP processes
        of 1 thread 2.02 s: 1.5-1.7x; 1 process / 2 threads 1.84 s: on two cores and so small a
        network, intra-op threads are as fast as DDP, which pays a gloo all-reduce per step
    `--device cuda` not measured yet: no GPU machine was lent to the task that added it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ (a) Ray workers


def bench_ray(candidates: int, repeats: int) -> dict:
    import ray

    from edgeai.executors import RayExecutor
    from edgeai.runs import CandidateTraining, RunConfig, make_space
    from edgeai.presets import PRESETS
    from edgeai.strategies import RandomSearch, search

    preset = PRESETS["random-digits"]
    config = RunConfig(preset=preset.name, strategy="random", dataset="digits", space=preset.space,
                       epochs=preset.epochs, device="cpu")
    space = make_space(preset, "digits", seed=0)
    evaluate = CandidateTraining(config, preset, space, bits=32)

    def run(executor):
        start = time.perf_counter()
        result = search(RandomSearch(space, seed=0), evaluate, candidates, executor=executor, progress=False)
        return time.perf_counter() - start, [(t.arch, t.score) for t in result.history]

    out = {"candidates": candidates}
    seconds, reference = min(run(None) for _ in range(repeats))
    out["in-process"] = seconds
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for workers in (1, 2):
            executor = RayExecutor(num_cpus=1, max_parallel=workers)
            warm = [executor.submit(_warm_up, 1.0) for _ in range(2)]  # start both workers, import torch there
            executor._ray.get(warm)
            timings = []
            for _ in range(repeats):
                s, history = run(executor)
                assert history == reference, "the parallel search's history differs from the sequential one"
                timings.append(s)
            out[f"ray-{workers}"] = min(timings)
    finally:
        ray.shutdown()
    out["speed-up 2 vs 1 Ray workers"] = out["ray-1"] / out["ray-2"]
    out["speed-up 2 Ray workers vs in-process"] = out["in-process"] / out["ray-2"]
    return out


def _warm_up(seconds: float) -> int:
    import edgeai.runs  # noqa: F401  (torch and the library, as a trial would)

    time.sleep(seconds)
    return os.getpid()


# ------------------------------------------------------------------ (b) DDP processes


def ddp_worker(out: Path, threads: int, device: str = "cpu") -> None:
    """One epoch of supernet training (after an untimed warm-up of 2 steps), on every rank:
    `device` "cpu" (gloo between ranks) or "cuda" (this rank's GPU, NCCL between ranks)."""
    from edgeai import distributed as dist
    from edgeai.data import digits
    from edgeai.estimation.supernet import Supernet, SupernetTrainConfig, train_supernet
    from edgeai.presets import PRESETS
    from edgeai.runs import network_space

    if dist.launched():
        here = dist.init_from_env(device)  # cuda: cuda:LOCAL_RANK, NCCL
    else:
        here = torch.device(device)
    preset = PRESETS["ofa-evolution-digits"]
    space = network_space(preset, "digits")
    data = {r: digits(resolution=r, seed=0) for r in space.config.resolutions}
    config = SupernetTrainConfig(seed=0, **dict(preset.train_settings, epochs=1))
    torch.manual_seed(0)
    net = Supernet(space)
    warm = {r: d.with_train_subset(2 * config.batch_size, seed=0) for r, d in data.items()}
    train_supernet(net, warm, config, device=here, threads=threads, progress=False)  # allocator, DDP buckets, kernels
    _synchronize(here)
    start = time.perf_counter()
    result = train_supernet(net, data, config, device=here, threads=threads, progress=False)
    _synchronize(here)  # the GPU's queue finished before the clock stops
    seconds = time.perf_counter() - start
    if dist.is_main():
        n = len(data[max(data)].train)
        out.write_text(json.dumps({"seconds": seconds, "steps": result.steps, "images": n,
                                   "ranks": dist.world_size(), "device": str(here), "loss": result.losses[-1]}))
    dist.shutdown()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_runs(device: str, gpus: int) -> list[tuple[str, int, int]]:
    """(name, processes, threads per process) of each run of (b)."""
    if device == "cpu":
        return [("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 DDP processes, 1 thread each", 2, 1)]
    runs = [("1 GPU", 1, 1)]  # the single-GPU throughput of the same epoch
    if gpus >= 2:
        runs.append((f"{gpus} GPUs, DDP (NCCL)", gpus, 1))
    return runs


def launch_command(report: Path, processes: int, threads: int, device: str) -> list[str]:
    """torchrun with one process per CPU share or per GPU, each running `ddp_worker`."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
            "--master-addr=127.0.0.1", f"--master-port={_free_port()}", __file__,
            "--ddp-worker", str(report), "--threads", str(threads), "--device", device]


def bench_ddp(repeats: int, device: str = "cpu") -> dict:
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if device == "cuda" and gpus == 0:
        raise SystemExit("--device cuda: no CUDA device here (torch.cuda.device_count() == 0)")
    out = {"device": device if device == "cpu" else f"{gpus} x {torch.cuda.get_device_name(0)}"}
    runs = ddp_runs(device, gpus)
    with tempfile.TemporaryDirectory() as tmp:
        for name, processes, threads in runs:
            timings = []
            for _ in range(repeats):
                report = Path(tmp) / "report.json"
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                proc = subprocess.run(launch_command(report, processes, threads, device), env=env, cwd=ROOT,
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
                timings.append(json.loads(report.read_text()))
            best = min(timings, key=lambda r: r["seconds"])
            out[name] = {"seconds per epoch": best["seconds"], "images/s": best["images"] / best["seconds"],
                         "steps": best["steps"]}
    seconds = {name: out[name]["seconds per epoch"] for name, _, _ in runs}
    if device == "cpu":
        two = seconds["2 DDP processes, 1 thread each"]
        out["speed-up 2 DDP processes vs 1 process (1 thread)"] = seconds["1 process, 1 thread"] / two
        out["speed-up 2 DDP processes vs 1 process (2 threads)"] = seconds["1 process, 2 threads"] / two
    elif gpus >= 2:
        out[f"speed-up {gpus} GPUs vs 1 GPU"] = seconds["1 GPU"] / seconds[f"{gpus} GPUs, DDP (NCCL)"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="(b) on the CPU (gloo) or on GPUs (one process per GPU, NCCL, and a 1-GPU run)")
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args.ddp_worker, args.threads, args.device)
        return
    report = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, CUDA: {torch.cuda.is_available()}"}
    if not args.skip_ray:
        report["ray"] = bench_ray(args.candidates, args.repeats)
    if not args.skip_ddp:
        report["ddp"] = bench_ddp(args.repeats, args.device)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
