"""How fast the network-level space costs architectures (issue 4: "fast enough to sample
thousands of architectures per second through `costs`"), for each of its configurations:

    digits        NetworkSpaceConfig.digits()         3 stages, 8-32 px (the course's laptop space)
    mcunet        NetworkSpaceConfig.mcunet()         TinyNAS-style, 96-176 px, no last conv
    mobilenet_v2  NetworkSpaceConfig.mobilenet_v2()   once-for-all-style, 6 stages, 128-256 px

Three rates per configuration, in architectures per second:
    costs           `space.costs(arch)` on architectures sampled beforehand (validation included)
    sample + costs  `space.costs(space.sample(rng))`: the loop of MCUNet's search-space analysis
                    (`edgeai.spaces.edge.flops_distributions`)
    profile         `profile(space.build(arch), space.input_shape(arch))`: what `costs` saves, on
                    fewer architectures (`--profiled`)

    python benchmarks/spaces.py [--n 2000] [--repeats 5] [--profiled 3] [--seed 0] [--spaces digits mcunet ...]

Each rate is the best over `--repeats` timed passes over the same `--n` architectures (the
minimum time: the pass least disturbed by other processes), by the wall clock and, in
parentheses, by this process's CPU time (which other processes disturb less).

Measured on the course's 2-core x86_64 CPU machine while other developers' work kept it busy
(load average 5 on 2 cores: this process got about half a core, hence the wall-clock rates below
the CPU-time ones), torch 2.13 CPU, Python 3.11, `--n 2000`, the best of two runs (`--repeats 5`
and `--repeats 7`), architectures per second:

    space           costs             sample + costs    profile           size
    digits          8,670 (10,810)    8,170 (10,330)    3.5-10 (9-16)     8.2e9
    mcunet          2,850  (4,220)    3,950  (4,080)    0.7-1.7 (1.3-2.7) 4.8e24
    mobilenet_v2    2,560  (4,080)    1,900  (3,810)    0.7-0.8 (1.5-1.7) 2.4e24

Every configuration costs thousands of architectures per second, sampling included (about
0.1 ms of CPU per digits architecture, 0.25 ms per ImageNet-scale one with 6 stages of up to 4
blocks), 700 to 4,400 times faster than building and profiling each network.
"""

from __future__ import annotations

import argparse
import platform
import random
import time

import torch

from edgeai.efficiency import profile
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig

CONFIGS = {
    "digits": NetworkSpaceConfig.digits,
    "mcunet": NetworkSpaceConfig.mcunet,
    "mobilenet_v2": NetworkSpaceConfig.mobilenet_v2,
}


def best_rate(run, count: int, repeats: int) -> tuple[float, float]:
    """Items per second of `run()` (which handles `count` items) from its fastest of `repeats`
    passes: by the wall clock, and by this process's CPU time (all its threads), which a shared
    machine disturbs less."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return count / min(wall), count / min(cpu)


def bench(name: str, n: int, repeats: int, profiled: int, seed: int) -> dict:
    space = NetworkSpace(CONFIGS[name]())
    archs = [space.sample(random.Random(f"{seed}/{i}")) for i in range(n)]

    def costs_only():
        for arch in archs:
            space.costs(arch)

    def sample_and_costs():
        rng = random.Random(seed)
        for _ in range(n):
            space.costs(space.sample(rng))

    out = {"space": name, "size": space.size(),
           "costs": best_rate(costs_only, n, repeats),
           "sample+costs": best_rate(sample_and_costs, n, repeats)}
    if profiled:
        def profile_some():
            for arch in archs[:profiled]:
                profile(space.build(arch), space.input_shape(arch))

        profile_some()  # the first profile pays one-off start-up costs
        out["profile"] = best_rate(profile_some, profiled, max(1, min(repeats, 2)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="architectures per timed pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the fastest counts")
    parser.add_argument("--profiled", type=int, default=3, help="architectures built and profiled for comparison (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    if args.n < 1 or args.repeats < 1 or args.profiled < 0:
        parser.error("--n and --repeats must be positive, --profiled non-negative")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"n={args.n}, best of {args.repeats}")
    print("architectures per second, by the wall clock (by CPU time)")
    print(f"{'space':14s} {'size':>8s} {'costs':>17s} {'sample + costs':>17s} {'profile':>13s} {'costs / profile':>16s}")
    for name in args.spaces:
        r = bench(name, args.n, args.repeats, args.profiled, args.seed)
        both = lambda rates, fmt: f"{rates[0]:{fmt}} ({rates[1]:{fmt}})"  # noqa: E731
        prof = both(r["profile"], ".2g") if "profile" in r else "-"
        ratio = f"{r['costs'][0] / r['profile'][0]:,.0f}x" if "profile" in r else "-"
        print(f"{name:14s} {r['size']:8.2g} {both(r['costs'], '7,.0f'):>17s} {both(r['sample+costs'], '7,.0f'):>17s} "
              f"{prof:>13s} {ratio:>16s}")


if __name__ == "__main__":
    main()
