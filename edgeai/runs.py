"""Run a search from a preset into a run folder: what `edgeai search` and `edgeai demo` do.

A run folder holds everything a run produced, so that nothing is lost and a killed run resumes:

    config.json     the resolved configuration (preset, overrides, seed, device)
    log.txt         what the run printed
    checkpoint.*    search state after every trial / epoch (`--resume RUN` continues from it)
    supernet.pt     the trained supernet (once-for-all-style runs)
    results.json    every trial (SearchResult JSON); results.csv the same as a table
    best.json       the best architecture, its metrics and (where it applies) its costs
    *.png           search curve, Pareto front (accuracy vs MACs), softmax(α) over the operations
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeai.data import Dataset, cifar10, digits
from edgeai.efficiency import profile
from edgeai.presets import PRESETS, Preset, default_preset
from edgeai.spaces import CategoricalSpace, NASNetCellSpace, NetworkSpace, NetworkSpaceConfig, SubSpace, TopologySpace
from edgeai.spaces.edge import Constraint
from edgeai.spaces.nasnet import NASNetConfig
from edgeai.spaces.topology import TopologyConfig
from edgeai.strategies import Evolution, GridSearch, RandomSearch, SearchResult, pareto_front, search
from edgeai.estimation.train import proxy_accuracy, resolve_device, train_and_evaluate

__all__ = ["RunConfig", "RunFolder", "resolve", "run_search"]


class UserError(ValueError):
    """A mistake in what the user asked for: reported as one line, never as a traceback."""


@dataclass
class RunConfig:
    """Everything that decides what a run does (written to config.json)."""

    preset: str
    strategy: str
    dataset: str
    space: str
    seed: int = 0
    budget: int | None = None
    epochs: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    download: bool = False
    order: str | None = None  # DARTS: "first" / "second"
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve(strategy: str | None, dataset: str, preset: str | None, **overrides) -> RunConfig:
    """The run configuration of a preset (named, or the default for strategy and dataset) with
    the user's overrides; a clear UserError if they do not fit together."""
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        p = PRESETS[preset]
        if strategy is not None and strategy != p.strategy:
            raise UserError(f"preset {preset!r} runs strategy {p.strategy!r}, not {strategy!r}")
        if dataset is not None and dataset != p.dataset:
            raise UserError(f"preset {preset!r} runs on {p.dataset!r}, not {dataset!r}")
    else:
        if strategy is None:
            raise UserError("say which strategy to run: --strategy {grid,random,evolution,reinforce,darts,proxyless} (or --preset NAME)")
        try:
            p = default_preset(strategy, dataset or "digits")
        except ValueError as err:
            raise UserError(str(err)) from None
    budget, epochs = overrides.pop("budget", None), overrides.pop("epochs", None)
    if budget is not None and p.strategy in ("darts", "proxyless"):
        raise UserError(f"{p.strategy} trains a supernet for a number of epochs: use --epochs, not --budget")
    if budget is not None and budget < 1:
        raise UserError(f"--budget must be a positive number of evaluations, got {budget}")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be a positive integer, got {epochs}")
    order = overrides.pop("order", None)
    if order is not None and p.strategy != "darts":
        raise UserError("--order applies to DARTS only")
    return RunConfig(preset=p.name, strategy=p.strategy, dataset=p.dataset, space=p.space,
                     budget=budget if budget is not None else p.budget,
                     epochs=epochs if epochs is not None else p.epochs, order=order, **overrides)


class RunFolder:
    """A folder that holds one run's configuration, log, checkpoints and results."""

    def __init__(self, path: str | os.PathLike, quiet: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet

    def file(self, name: str) -> Path:
        return self.path / name

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)
        with open(self.file("log.txt"), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}\n")

    def write_json(self, name: str, data: Any) -> Path:
        path = self.file(name)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=_json_default))
        os.replace(tmp, path)
        return path

    def read_config(self) -> RunConfig:
        path = self.file("config.json")
        if not path.exists():
            raise UserError(f"{self.path} is not a run folder (no config.json): nothing to resume")
        return RunConfig(**json.loads(path.read_text())["run"])

    def write_results(self, result: SearchResult) -> None:
        result.save(self.file("results.json"))
        rows = []
        keys: list[str] = []
        for t in result.history:
            row = {"index": t.index, "status": t.status, "score": t.score, **t.metrics,
                   "violations": "; ".join(t.violations), "seconds": round(t.seconds, 3),
                   "arch": json.dumps(t.arch, sort_keys=True)}
            keys += [k for k in row if k not in keys]
            rows.append(row)
        with open(self.file("results.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)


def _json_default(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, torch.device):
        return str(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Data and spaces
# --------------------------------------------------------------------------------------------


def check_data(config: RunConfig) -> None:
    """A UserError that says how to get the data when it is not there (and not to be downloaded)."""
    if config.dataset != "cifar10" or config.download:
        return
    if config.data_dir is None:
        raise UserError("CIFAR-10 needs --data-dir D (a folder with cifar-10-batches-py/), or --download "
                        "to fetch it (170 MB) into ./data")
    folder = Path(config.data_dir)
    if not (folder / "cifar-10-batches-py" / "data_batch_1").exists() and not (folder / "data_batch_1").exists():
        raise UserError(f"no CIFAR-10 in {folder} (expected {folder}/cifar-10-batches-py/data_batch_1 ...); "
                        f"add --download to fetch it there")


def load_data(config: RunConfig, resolution: int | None = None) -> Dataset:
    if config.dataset == "digits":
        return digits(resolution=resolution or 8, seed=0)
    if config.data_dir is None and not config.download:
        raise UserError("CIFAR-10 needs --data-dir D (a folder with cifar-10-batches-py/), or --download "
                        "to fetch it (170 MB) into ./data")
    try:
        return cifar10(config.data_dir or "data", download=config.download)
    except FileNotFoundError as err:
        raise UserError(str(err).splitlines()[0]) from None


def network_space(preset: Preset, dataset: str) -> NetworkSpace:
    """The network-level space of a preset: the digits frame or the CIFAR/ImageNet frame, with the
    preset's settings."""
    make = NetworkSpaceConfig.digits if dataset == "digits" else NetworkSpaceConfig
    return NetworkSpace(make(**preset.space_settings))


def make_space(preset: Preset, dataset: str, seed: int) -> CategoricalSpace:
    """The search space a preset names, sized for its dataset."""
    if preset.space == "network":
        return network_space(preset, dataset)
    if preset.space == "width-resolution":  # the lecture's grid: width x resolution of one network
        full = network_space(preset, dataset)
        base = full.sample(random.Random(seed))  # the other decisions, fixed
        return SubSpace(full, base, {"width": full.config.widths, "resolution": full.config.resolutions})
    if preset.space == "nasnet":
        return NASNetCellSpace(num_blocks=preset.space_settings.get("num_blocks", 5))
    if preset.space == "topology":
        return TopologySpace(num_layers=preset.space_settings.get("num_layers", 8))
    raise UserError(f"the black-box strategies search 'network', 'width-resolution', 'nasnet' or 'topology', "
                    f"not {preset.space!r}")


def deployment(preset: Preset, dataset: str) -> tuple[Constraint | None, int]:
    """The preset's device constraint and the bit width it assumes: int8 for the CIFAR-10 runs (as
    MCUNet deploys), float32 for the digits runs (the course trains float models, and the small
    digits networks only meet the Tiny tier's limits at 4 bytes per value)."""
    bits = 32 if dataset == "digits" else 8
    if preset.tier is None:
        return None, bits
    return Constraint.for_tier(preset.tier, weight_bits=bits, activation_bits=bits), bits


# --------------------------------------------------------------------------------------------
# Black-box searches: grid, random, evolution, reinforce
# --------------------------------------------------------------------------------------------


def _strategy(config: RunConfig, preset: Preset, space: CategoricalSpace, constraint):
    settings = dict(preset.strategy_settings)
    if config.strategy == "grid":
        return GridSearch(space, seed=config.seed)
    if config.strategy == "random":
        return RandomSearch(space, seed=config.seed)
    if config.strategy == "evolution":
        return Evolution(space, seed=config.seed, constraint=constraint, **settings)
    if config.strategy == "reinforce":
        from edgeai.strategies.reinforce import Reinforce, ReinforceConfig

        return Reinforce(space, seed=config.seed, config=ReinforceConfig(**settings))
    raise UserError(f"unknown black-box strategy {config.strategy!r}")


def _costs(space, arch, input_shape, factory) -> dict:
    """Analytic costs where the space has them, else measured on the built network."""
    if hasattr(space, "costs"):
        c = space.costs(arch)
        return {"params": c.params, "macs": c.macs, "peak_activations": c.peak_activations,
                "activations": c.activations}
    p = profile(factory(), input_shape)
    return {"params": p.params, "macs": p.macs, "peak_activations": p.peak_activations, "activations": p.activations}


def _resolution(space, arch, data: Dataset) -> int:
    if isinstance(space, SubSpace):
        return space.full(arch)["resolution"]
    if isinstance(space, NetworkSpace):
        return arch["resolution"]
    return data.input_shape[-1]


def _build(space, preset: Preset, data: Dataset, arch):
    if isinstance(space, NASNetCellSpace):
        cfg = NASNetConfig(in_channels=data.input_shape[0], num_classes=data.num_classes,
                           **{k: v for k, v in preset.space_settings.items() if k in ("channels", "cells_per_stage")})
        return lambda: space.build(arch, cfg)
    if isinstance(space, TopologySpace):
        return lambda: space.build(arch, TopologyConfig(in_channels=data.input_shape[0], num_classes=data.num_classes))
    return lambda: space.build(arch)


def run_blackbox(config: RunConfig, run: RunFolder, resume: bool) -> SearchResult:
    preset = PRESETS[config.preset]
    device = resolve_device(config.device)
    base = load_data(config)
    space = make_space(preset, config.dataset, config.seed)
    if config.dataset == "digits":
        datasets = {r: digits(resolution=r, seed=0) for r in _resolutions(space) or (8,)}
        data_at = lambda r: datasets.get(r) or base.resized(r)  # noqa: E731
    else:
        base = base.to(device)
        cache: dict[int, Dataset] = {}
        data_at = lambda r: cache.setdefault(r, base.resized(r))  # noqa: E731
    tier, bits = deployment(preset, config.dataset)

    def shape_of(arch):
        r = _resolution(space, arch, base)
        return (1, base.input_shape[0], r, r)

    def costs(arch):
        return _costs(space, arch, shape_of(arch), _build(space, preset, base, arch))

    def constraint(arch):
        return tier.violations(costs(arch)) if tier else []

    train = dict(preset.train_settings)

    def evaluate(arch):
        data = data_at(_resolution(space, arch, base))
        factory = _build(space, preset, data, arch)
        if config.dataset == "digits":
            accuracy = proxy_accuracy(factory, data, seed=config.seed, epochs=config.epochs, **train)
        else:
            accuracy = train_and_evaluate(factory, data, config.epochs, seed=config.seed, device=device,
                                          test=False, track_val=False, progress=False, **train).val_accuracy
        c = costs(arch)
        return {"score": accuracy, "accuracy": accuracy, "macs": c["macs"], "params": c["params"],
                "peak_kb": c["peak_activations"] * bits / 8 / 1024}

    strategy = _strategy(config, preset, space, constraint if tier else None)
    run.log(f"{type(strategy).__name__} over {space!r} on {config.dataset} ({device}); "
            f"budget {config.budget or 'the whole grid'} evaluations, {config.epochs} training epochs each"
            + (f"; constraint: {preset.tier} tier at {bits}-bit" if tier else ""))
    budget = config.budget or (space.size() if config.strategy == "grid" else 1)
    result = search(strategy, evaluate, budget, constraint=constraint if tier else None,
                    checkpoint=run.file("checkpoint.json"), resume=resume, progress=config.progress,
                    callback=lambda t: run.log(_trial_line(t, _describer(space))))
    _finish_blackbox(run, result, space)
    return result


def _resolutions(space) -> tuple[int, ...]:
    if isinstance(space, SubSpace):
        return tuple(space.options("resolution")) if "resolution" in space.names else (space.base["resolution"],)
    if isinstance(space, NetworkSpace):
        return space.config.resolutions
    return ()


def _trial_line(t, describe=None) -> str:
    arch = describe(t.arch) if describe else ""
    if t.status == "infeasible":
        return f"trial {t.index}: skipped, {'; '.join(t.violations)}  {arch}"
    m = t.metrics
    costs = ""
    if "macs" in m:
        costs = f", {m['macs'] / 1e6:.2f}M MACs, {m['params'] / 1e3:.1f}K params, peak {m['peak_kb']:.0f} KB"
    timing = "repeat" if t.status == "cached" else f"{t.seconds:.1f} s"
    return f"trial {t.index}: accuracy {t.score:.4f}{costs} ({timing})  {arch}"


def _describer(space):
    if isinstance(space, SubSpace):
        return lambda arch: _describer(space.parent)(space.full(arch))
    if isinstance(space, NASNetCellSpace):
        return lambda arch: " ".join(line.strip().split(" = ")[1] for line in space.describe(arch).splitlines())
    if hasattr(space, "describe"):
        return space.describe
    return lambda arch: json.dumps(arch)


def _finish_blackbox(run: RunFolder, result: SearchResult, space) -> None:
    run.write_results(result)
    best = result.best
    run.write_json("best.json", {"arch": best.arch, "score": best.score, "metrics": best.metrics})
    _plots_blackbox(run, result)
    describe = _describer(space)
    skipped = f", {len(result.infeasible)} skipped by the constraint" if result.infeasible else ""
    run.log(f"{result.evaluations} evaluations{skipped}")
    run.log("best: " + _trial_line(best, describe).split(": ", 1)[1])
    if all("macs" in t.metrics for t in result.evaluated):
        run.log(pareto_table(result, describe))


def pareto_table(result: SearchResult, describe=None) -> str:
    """The Pareto front (the best accuracy for the MACs) as a text table."""
    lines = [f"{'MACs':>12}  {'accuracy':>8}  {'peak KB':>7}  architecture"]
    for t in result.pareto("macs", "score"):
        arch = describe(t.arch) if describe else json.dumps(t.arch)
        lines.append(f"{t.metrics['macs']:>12,}  {t.score:>8.4f}  {t.metrics.get('peak_kb', float('nan')):>7.0f}  {arch}")
    return "Pareto front (accuracy vs MACs):\n" + "\n".join(lines)


def _plots_blackbox(run: RunFolder, result: SearchResult) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from edgeai.plots import plot_pareto, plot_search_curves

    ax = plot_search_curves({result.strategy: result.best_so_far()})
    ax.figure.savefig(run.file("search_curve.png"), dpi=120)
    plt.close(ax.figure)
    evaluated = [t for t in result.evaluated if "macs" in t.metrics]
    if evaluated:
        xs, ys = [t.metrics["macs"] for t in evaluated], [t.score for t in evaluated]
        ax = plot_pareto(xs, ys, pareto_front(list(zip(xs, ys)), maximize=(False, True)), logx=True,
                         ylabel="accuracy", title="Accuracy vs MACs")
        ax.figure.savefig(run.file("pareto.png"), dpi=120)
        plt.close(ax.figure)


# --------------------------------------------------------------------------------------------
# Gradient searches: DARTS and ProxylessNAS (one supernet, epochs)
# --------------------------------------------------------------------------------------------


def run_gradient(config: RunConfig, run: RunFolder, resume: bool) -> SearchResult:
    from edgeai.strategies.darts import DartsConfig, darts_search
    from edgeai.strategies.proxyless import (ProxylessConfig, ProxylessSpace, latency_table,
                                             proxyless_search)
    from edgeai.estimation.latency import load_latency_table, save_latency_table

    preset = PRESETS[config.preset]
    device = resolve_device(config.device)
    data = load_data(config)
    settings = dict(preset.strategy_settings)
    if config.epochs is not None:
        settings["epochs"] = config.epochs
        if "warmup_epochs" in settings:
            settings["warmup_epochs"] = min(settings["warmup_epochs"], config.epochs // 4)
    if device.type != "cuda":
        settings["channels_last"] = False  # NHWC pays off on GPUs, not in these small CPU runs
    threads = 1 if device.type == "cpu" and config.dataset == "digits" else None
    common = dict(seed=config.seed, device=device, threads=threads, checkpoint=run.file("checkpoint.pt"),
                  resume=resume, progress=config.progress,
                  callback=lambda t: run.log(f"epoch {t.index + 1}: supernet val accuracy {t.score:.4f} "
                                             f"({t.metrics.get('seconds', 0):.1f} s)"))
    if config.strategy == "darts":
        if config.order is not None:
            settings["order"] = config.order
        cfg = DartsConfig(**settings)
        run.log(f"DARTS ({cfg.order} order): {cfg.layers} cells, {cfg.init_channels} channels, batch "
                f"{cfg.batch_size}, {cfg.epochs} epochs on {data.name} ({device})")
        result = darts_search(data, cfg, **common)
    else:
        cfg = ProxylessConfig(**settings)
        space = ProxylessSpace(cfg, data.input_shape, data.num_classes)
        table_file = run.file("latency_table.json")
        if table_file.exists():
            table = load_latency_table(table_file)
            run.log(f"latency table: {len(table)} entries from {table_file}")
        else:
            run.log(f"measuring the latency lookup table on {device} ...")
            table = latency_table(space, device, threads=threads, progress=config.progress)
            save_latency_table(table, table_file, device=device)
        run.log(f"ProxylessNAS ({cfg.loss} latency loss): {len(space)} layers, {cfg.epochs} epochs on "
                f"{data.name} ({device})")
        result = proxyless_search(data, cfg, table=table, **common)
    run.write_results(result)
    run.write_json("best.json", {"arch": result.arch, "supernet_val_accuracy": result.history[-1].score,
                                 "metrics": result.history[-1].metrics})
    _plots_gradient(run, result)
    run.log(f"derived architecture: {result.arch}")
    return result


def _plots_gradient(run: RunFolder, result) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from edgeai.plots import plot_alphas, plot_search_curves

    ax = plot_search_curves({result.strategy: [t.score for t in result.history]}, xlabel="epoch",
                            ylabel="supernet validation accuracy")
    ax.figure.savefig(run.file("search_curve.png"), dpi=120)
    plt.close(ax.figure)
    last = result.alphas[-1] if result.alphas else None
    if last and "primitives" in last:  # DARTS: one heatmap per cell type
        fig, axes = plt.subplots(1, 2, figsize=(14, 0.4 * len(last["normal"]) + 2))
        edges = [f"edge {i}" for i in range(len(last["normal"]))]
        for ax, kind in zip(axes, ("normal", "reduce")):
            plot_alphas(last[kind], edges, last["primitives"], ax=ax, title=f"softmax(α), {kind} cell")
    elif last:  # ProxylessNAS: one row per layer
        options = sorted({o for layer in last.values() for o in layer})
        probs = [[layer.get(o, 0.0) for o in options] for layer in last.values()]
        ax = plot_alphas(probs, list(last), options, title="softmax(α) per layer")
        fig = ax.figure
    else:
        return
    fig.tight_layout()
    fig.savefig(run.file("alphas.png"), dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Once-for-all style: train a supernet, then evolution over its sub-networks
# --------------------------------------------------------------------------------------------


def run_ofa(config: RunConfig, run: RunFolder, resume: bool) -> SearchResult:
    from edgeai.estimation.supernet import (Supernet, SupernetTrainConfig, load_supernet, save_supernet,
                                            train_supernet)

    preset = PRESETS[config.preset]
    device = resolve_device(config.device)
    space = network_space(preset, config.dataset)
    if config.dataset == "digits":
        data = {r: digits(resolution=r, seed=0) for r in space.config.resolutions}
    else:
        data = load_data(config)
    train = dict(preset.train_settings)
    if config.epochs is not None:
        train["epochs"] = config.epochs
    train_cfg = SupernetTrainConfig(seed=config.seed, **train)
    threads = 1 if device.type == "cpu" and config.dataset == "digits" else None
    final = run.file("supernet.pt")
    if resume and final.exists():
        supernet = load_supernet(final, device)
        run.log(f"trained supernet loaded from {final}")
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            supernet = Supernet(space)
        run.log(f"training {supernet!r} ({train_cfg.rule}, {sum(train_cfg.phases_epochs())} epochs) on {device}")
        train_supernet(supernet, data, train_cfg, device=device, threads=threads,
                       checkpoint=run.file("supernet_checkpoint.pt"), resume=resume, progress=config.progress)
        save_supernet(supernet, final)
    supernet.to(device).eval()
    if isinstance(data, dict):
        data = {r: d.to(device) for r, d in data.items()}
    else:
        data = data.to(device)
    tier, bits = deployment(preset, config.dataset)

    def constraint(arch):
        return tier.violations(space.costs(arch)) if tier else []

    def evaluate(arch):
        accuracy = supernet.evaluate(arch, data, split="val", seed=config.seed, threads=threads)
        c = space.costs(arch)
        return {"score": accuracy, "accuracy": accuracy, "macs": c.macs, "params": c.params,
                "peak_kb": c.peak_activations * bits / 8 / 1024}

    strategy = Evolution(space, seed=config.seed, constraint=constraint if tier else None, **preset.strategy_settings)
    run.log(f"evolution over the supernet's sub-networks: budget {config.budget} evaluations"
            + (f", {preset.tier} tier at {bits}-bit" if tier else ""))
    result = search(strategy, evaluate, config.budget, constraint=constraint if tier else None,
                    checkpoint=run.file("checkpoint.json"), resume=resume, progress=config.progress,
                    callback=lambda t: run.log(_trial_line(t, space.describe)))
    _finish_blackbox(run, result, space)
    return result


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def run_search(config: RunConfig, out: str | os.PathLike, resume: bool = False, quiet: bool = False) -> SearchResult:
    """Run (or resume) the search `config` describes into the run folder `out`."""
    check_data(config)  # before anything is written: a missing dataset is one clear line
    run = RunFolder(out, quiet=quiet)
    if not resume:
        if run.file("config.json").exists():
            raise UserError(f"{run.path} already holds a run; resume it with --resume {run.path} or pick another --out")
        preset = PRESETS[config.preset]
        run.write_json("config.json", {"run": config.to_dict(), "preset": dataclasses.asdict(preset)})
    run.log(("resuming" if resume else "starting") + f" {config.preset} (seed {config.seed}) in {run.path}")
    if config.strategy in ("darts", "proxyless"):
        result = run_gradient(config, run, resume)
    elif PRESETS[config.preset].train_settings.get("rule"):  # a supernet to train first: once-for-all style
        result = run_ofa(config, run, resume)
    else:
        result = run_blackbox(config, run, resume)
    run.log(f"results in {run.path}/ (results.json, results.csv, best.json, plots)")
    return result

