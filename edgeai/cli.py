"""The `edgeai` command (also `python -m edgeai`).

    edgeai demo                      hardware-aware evolutionary search on the digits under the Tiny
                                     tier (about a minute on a laptop CPU); Pareto table, plot, run folder
    edgeai profile MODEL             the profile table of a reference network (resnet50, mobilenet_v2, ...)
    edgeai search --strategy S ...   any strategy, at the papers' settings on CIFAR-10 (GPU) or small on digits
    edgeai presets                   the named settings and where their numbers come from

Bad arguments get one line on stderr and exit status 2; nothing is lost: every search writes a
run folder and can be resumed (`edgeai search --resume RUN`).

Beyond one process:
    edgeai search ... --executor ray [--ray-address auto] [--workers N] [--gpus-per-trial 0.25]
                                     candidates evaluated in parallel as Ray tasks (same history)
    torchrun --nproc-per-node N -m edgeai search --preset darts-cifar10 ...
                                     one supernet (DARTS, once-for-all) trained data-parallel (DDP)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one clear line (and exit status 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1x3x224x224") from None
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1x3x224x224 (positive sizes)")
    return shape


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _number(minimum: float, strict: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'>' if strict else '>='} {minimum:g}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from edgeai.models import MODELS
    from edgeai.presets import DATASETS, PRESETS, STRATEGIES

    parser = _Parser(prog="edgeai", description="Neural Architecture Search for Edge AI: the course's command.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    demo = sub.add_parser("demo", help="hardware-aware evolutionary search on the digits (about a minute)")
    demo.add_argument("--out", help="run folder (default: runs/demo-<time>)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--budget", type=_positive, help="candidates to train (default: the preset's 12)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    prof = sub.add_parser("profile", help="the profile table of a reference network")
    prof.add_argument("model", choices=sorted(MODELS), metavar="MODEL", help=f"one of {', '.join(sorted(MODELS))}")
    prof.add_argument("--input", type=_shape, default=(1, 3, 224, 224), help="input shape, e.g. 1x3x224x224")

    srch = sub.add_parser("search", help="run a search (papers' settings on CIFAR-10, small on digits)")
    srch.add_argument("--strategy", choices=STRATEGIES)
    srch.add_argument("--space", help="what to search (default: the preset's; e.g. network, nasnet, darts)")
    srch.add_argument("--dataset", choices=DATASETS, help="digits (embedded, default) or cifar10")
    srch.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ (CIFAR-10)")
    srch.add_argument("--download", action="store_true", help="download CIFAR-10 (170 MB) if it is not there")
    srch.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:N")
    srch.add_argument("--seed", type=int, default=0)
    srch.add_argument("--budget", type=_positive, help="evaluations (grid, random, evolution, reinforce)")
    srch.add_argument("--epochs", type=_positive,
                      help="search epochs (darts, proxyless), supernet epochs (ofa-evolution) or training epochs per candidate")
    srch.add_argument("--order", choices=("first", "second"), help="DARTS: first- or second-order architecture gradient")
    srch.add_argument("--out", help="run folder (default: runs/<preset>-<time>)")
    srch.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN from its last checkpoint")
    srch.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME", help="named settings (see `edgeai presets`)")
    srch.add_argument("--quiet", action="store_true", help="no progress bars")
    srch.add_argument("--compile", action="store_true",
                      help="torch.compile the training step (DARTS, candidates trained from scratch; pays off "
                           "on a GPU in long runs, the first steps wait for the compiler)")
    par = srch.add_argument_group("parallel candidates (Ray; for a supernet on several GPUs: torchrun -m edgeai search ...)")
    par.add_argument("--executor", choices=("local", "ray"),
                     help="where candidates are evaluated: local (this process, default) or ray (parallel Ray tasks)")
    par.add_argument("--ray-address", metavar="ADDR",
                     help="an existing Ray cluster: auto (after `ray start --head`) or ray://HOST:10001 (default: a local Ray)")
    par.add_argument("--workers", type=_positive, help="trials at once (default: as many as the Ray cluster holds)")
    par.add_argument("--cpus-per-trial", type=_number(0, strict=True), help="CPUs of each Ray trial (default 1)")
    par.add_argument("--gpus-per-trial", type=_number(0, strict=False),
                     help="GPUs of each Ray trial (default 0; 0.25: four trials share a GPU)")

    sub.add_parser("presets", help="list the named settings and their sources")
    return parser


def _default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_profile(args) -> int:
    from edgeai.efficiency import profile
    from edgeai.models import MODELS

    model = MODELS[args.model]()
    try:
        print(profile(model, args.input))
    except RuntimeError as err:  # e.g. an input the network cannot take
        raise _Fail(f"{args.model} cannot run on input {'x'.join(map(str, args.input))}: {str(err).splitlines()[0]}")
    return 0


def cmd_presets(args) -> int:
    from edgeai.presets import PRESETS

    for p in PRESETS.values():
        budget = f"budget {p.budget}" if p.budget else ""
        epochs = f"{p.epochs} epochs" if p.epochs else ""
        print(f"{p.name:<24} {p.strategy:<10} {p.dataset:<8} {p.space:<17} {', '.join(x for x in (budget, epochs) if x)}")
        print(f"{'':<24} {p.description}")
        if p.source:
            print(f"{'':<24} source: {p.source}")
    return 0


def _parallel(args) -> dict:
    """The executor options given on the command line (None: not given)."""
    return {"executor": args.executor, "ray_address": args.ray_address, "workers": args.workers,
            "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial}


def cmd_search(args) -> int:
    from edgeai.runs import RunFolder, check_executor, resolve, run_search

    if args.resume:
        run = RunFolder(args.resume, writer=False)
        config = run.read_config()
        if args.device != "auto":
            config.device = args.device
        config.progress = not args.quiet
        given = {k: v for k, v in _parallel(args).items() if v is not None}
        if given:  # resume on other workers: the history is the same
            config = dataclasses.replace(config, **given)
            check_executor(config.strategy, dataclasses.asdict(config))
        run_search(config, args.resume, resume=True)
        return 0
    if args.space is not None:
        _check_space(args)
    parallel = {k: v for k, v in _parallel(args).items() if v is not None}
    config = resolve(args.strategy, args.dataset, args.preset, budget=args.budget, epochs=args.epochs,
                     order=args.order, seed=args.seed, device=args.device, data_dir=args.data_dir,
                     download=args.download, progress=not args.quiet, compile=args.compile, **parallel)
    if args.space is not None and args.space != config.space:
        from edgeai.presets import PRESETS

        matching = [p.name for p in PRESETS.values()
                    if p.strategy == config.strategy and p.dataset == config.dataset and p.space == args.space]
        if not matching:
            raise _Fail(f"no preset runs {config.strategy} over the {args.space!r} space on {config.dataset}; "
                        f"the default is {config.space!r}")
        config = resolve(None, config.dataset, matching[0], budget=args.budget, epochs=args.epochs,
                         order=args.order, seed=args.seed, device=args.device, data_dir=args.data_dir,
                         download=args.download, progress=not args.quiet, compile=args.compile, **parallel)
    run_search(config, args.out or _default_out(config.preset))
    return 0


def _check_space(args) -> None:
    allowed = {"darts": ("darts",), "proxyless": ("proxyless",)}.get(
        args.strategy or "", ("network", "width-resolution", "nasnet", "topology"))
    if args.space not in allowed:
        raise _Fail(f"--space {args.space!r} does not go with --strategy {args.strategy}; choose from {', '.join(allowed)}")


def cmd_demo(args) -> int:
    from edgeai.runs import resolve, run_search

    config = resolve(None, None, "tinynas-digits", budget=args.budget, seed=args.seed, progress=not args.quiet)
    out = Path(args.out) if args.out else _default_out("demo")
    print("edgeai demo: hardware-aware evolutionary search on the handwritten digits under the Tiny tier\n"
          "(320 KB SRAM for activations, 1 MB Flash for weights); each candidate is trained briefly.")
    run_search(config, out)
    print(f"\nThe run folder {out}/ holds results.json, results.csv, best.json, pareto.png and search_curve.png.\n"
          f"The full-size version on a GPU: edgeai search --preset tinynas-cifar10 --data-dir DATA (or --download)")
    return 0


class _Fail(Exception):
    """A mistake reported as one line."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from edgeai.runs import UserError

    from edgeai import distributed as dist

    commands = {"demo": cmd_demo, "profile": cmd_profile, "search": cmd_search, "presets": cmd_presets}
    try:
        if dist.launched():  # under torchrun: join the process group (gloo on CPU, NCCL on GPUs)
            if args.command != "search":
                raise _Fail("torchrun runs `edgeai search` (a supernet trained on several processes), not "
                            f"`edgeai {args.command}`")
            dist.init_from_env(args.device)
        return commands[args.command](args)
    except (_Fail, UserError) as err:
        if dist.is_main():  # one line, not one per rank
            print(f"edgeai {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nedgeai {args.command}: interrupted; the run folder keeps every finished trial "
              "(resume with edgeai search --resume RUN)", file=sys.stderr)
        return 130
    finally:
        dist.shutdown()


if __name__ == "__main__":
    sys.exit(main())
