"""Run a search from a preset into a run folder: what `edgeai search` and `edgeai demo` do.

A run folder holds everything a run produced, so that nothing is lost and a killed run resumes:

    config.json     the resolved configuration (preset, overrides, seed, device)
    log.txt         what the run printed
    checkpoint.*    search state after every trial / epoch (`--resume RUN` continues from it)
    supernet.pt     the trained supernet (once-for-all-style runs)
    results.json    every trial (SearchResult JSON); results.csv the same as a table
    best.json       the best architecture, its metrics and (where it applies) its costs
    *.png           search curve, Pareto front (accuracy vs MACs), softmax(α) over the operations

Beyond one process: `executor="ray"` evaluates the candidates of a black-box search as parallel
Ray tasks (same history as in-process, see `edgeai.executors`); under `torchrun` the supernet of
a DARTS or once-for-all run trains data-parallel on every rank (`edgeai.distributed`), rank 0
writing the run folder.
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

from edgeai import distributed as dist
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
    compile: bool = False  # torch.compile the training step (DARTS's supernet, candidates trained from scratch)
    executor: str = "local"  # where candidates are evaluated: "local" (this process) or "ray" (parallel tasks)
    ray_address: str | None = None  # None: a local Ray; "auto" or "ray://HOST:10001": an existing cluster
    workers: int | None = None  # Ray: trials at once (None: as many as the cluster's resources hold)
    cpus_per_trial: float = 1  # Ray: CPUs of each trial
    gpus_per_trial: float = 0  # Ray: GPUs of each trial (0.25: four trials share a GPU)

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
    check_executor(p.strategy, overrides)
    if overrides.get("compile") and (p.strategy == "proxyless" or p.train_settings.get("rule")):
        raise UserError(f"--compile fits a network that stays the same from step to step (DARTS, candidates "
                        f"trained from scratch); {p.name} samples a new sub-network every step, which would "
                        f"recompile every time")
    return RunConfig(preset=p.name, strategy=p.strategy, dataset=p.dataset, space=p.space,
                     budget=budget if budget is not None else p.budget,
                     epochs=epochs if epochs is not None else p.epochs, order=order, **overrides)


def check_executor(strategy: str, settings: dict) -> None:
    """A UserError for executor options that do not fit the run."""
    executor = settings.get("executor") or "local"
    if executor not in ("local", "ray"):
        raise UserError(f"--executor must be local or ray, got {executor!r}")
    ray_only = [f"--{k.replace('_', '-')}" for k in ("ray_address", "workers", "cpus_per_trial", "gpus_per_trial")
                if settings.get(k) not in (None, RunConfig.__dataclass_fields__[k].default)]
    if ray_only and executor != "ray":
        raise UserError(f"{', '.join(ray_only)} go with --executor ray")
    if executor == "ray" and strategy in ("darts", "proxyless"):
        raise UserError(f"{strategy} trains one supernet, it has no candidates to spread over Ray: "
                        f"train it on several GPUs with torchrun --nproc-per-node N -m edgeai search ...")
    for name in ("cpus_per_trial", "gpus_per_trial"):
        value = settings.get(name)
        if value is not None and (value < 0 or (name == "cpus_per_trial" and value == 0)):
            raise UserError(f"--{name.replace('_', '-')} must be {'positive' if name == 'cpus_per_trial' else '>= 0'}, got {value}")


class RunFolder:
    """A folder that holds one run's configuration, log, checkpoints and results. Under torchrun
    only rank 0 writes (`writer`); the other ranks read it (checkpoints to resume from)."""

    def __init__(self, path: str | os.PathLike, quiet: bool = False, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet

    def file(self, name: str) -> Path:
        return self.path / name

    def log(self, message: str) -> None:
        if not self.writer:
            return
        if not self.quiet:
            print(message, flush=True)
        with open(self.file("log.txt"), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}\n")

    def write_json(self, name: str, data: Any) -> Path:
        path = self.file(name)
        if not self.writer:
            return path
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
        if not self.writer:
            return
        result.save(self.file("results.json"))
        rows = []
        keys: list[str] = []
        for t in result.history:
            row = {"index": t.index, "status": t.status, "score": t.score, **t.metrics,
                   "violations": "; ".join(t.violations), "seconds": round(t.seconds, 3),
                   "arch": json.dumps(t.arch, sort_keys=True)}
            if t.error:
                row["error"] = t.error.splitlines()[0]
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


_DATASETS: dict[tuple, Dataset] = {}  # per process: the data the evaluations here need, loaded once


def dataset_at(config: RunConfig, resolution: int | None, device: torch.device) -> Dataset:
    """The run's dataset at `resolution` (None: as stored) on `device`, loaded once per process
    (a Ray worker loads it for its first trial and keeps it for the next ones)."""
    key = (config.dataset, config.data_dir, resolution, str(device))
    if any(k[:2] != key[:2] for k in _DATASETS):
        _DATASETS.clear()  # another run's data: keep one run's in memory, not every run's
    if key not in _DATASETS:
        if config.dataset == "digits":
            _DATASETS[key] = digits(resolution=resolution or 8, seed=0)
        elif resolution is None:
            _DATASETS[key] = load_data(config).to(device)
        else:
            _DATASETS[key] = dataset_at(config, None, device).resized(resolution)
    return _DATASETS[key]


def _data_device(config: RunConfig) -> torch.device:
    """Where a candidate's data lies: the digits proxy trains on the CPU, CIFAR-10 on the device."""
    return torch.device("cpu") if config.dataset == "digits" else resolve_device(config.device)


class CandidateTraining:
    """`evaluate(arch)` of a black-box run: train the candidate (the digits proxy, or a short
    schedule on CIFAR-10) and measure its costs. Light and picklable (a config, a preset, a
    space): Ray ships it to its workers, which load the data themselves (`dataset_at`) and pick
    their device ("auto": the GPU Ray gave the trial, if any)."""

    def __init__(self, config: RunConfig, preset: Preset, space: CategoricalSpace, bits: int):
        self.config, self.preset, self.space, self.bits = config, preset, space, bits

    def __call__(self, arch: dict) -> dict:
        config, space = self.config, self.space
        device = resolve_device(config.device)
        where = _data_device(config)
        r = _resolution(space, arch, dataset_at(config, None, where))
        data = dataset_at(config, r, where)
        factory = _build(space, self.preset, data, arch)
        train = dict(self.preset.train_settings)
        if config.dataset == "digits":
            accuracy = proxy_accuracy(factory, data, seed=config.seed, epochs=config.epochs,
                                      compile=config.compile, **train)
        else:
            accuracy = train_and_evaluate(factory, data, config.epochs, seed=config.seed, device=device,
                                          compile=config.compile, test=False, track_val=False, progress=False,
                                          **train).val_accuracy
        c = _costs(space, arch, (1, data.input_shape[0], r, r), factory)
        return {"score": accuracy, "accuracy": accuracy, "macs": c["macs"], "params": c["params"],
                "peak_kb": c["peak_activations"] * self.bits / 8 / 1024}


def make_executor(config: RunConfig):
    """None (evaluate in this process) or the RayExecutor the run asks for."""
    if config.executor != "ray":
        return None
    from edgeai.executors import RayExecutor

    try:
        return RayExecutor(num_cpus=config.cpus_per_trial, num_gpus=config.gpus_per_trial,
                           address=config.ray_address, max_parallel=config.workers)
    except ImportError as err:
        raise UserError(str(err)) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = config.ray_address or "a local Ray"
        raise UserError(f"cannot start the Ray executor on {where}: {str(err).strip().splitlines()[0]}") from None


def _executor_note(executor) -> str:
    if executor is None:
        return ""
    return (f"; {executor.workers} trials at once on Ray ({executor.num_cpus:g} CPUs"
            + (f", {executor.num_gpus:g} GPUs" if executor.num_gpus else "") + " each)")


def run_blackbox(config: RunConfig, run: RunFolder, resume: bool) -> SearchResult:
    preset = PRESETS[config.preset]
    device = resolve_device(config.device)
    # its shapes, for the costs the constraint checks here (with Ray, the workers load their own)
    base = dataset_at(config, None, torch.device("cpu") if config.executor == "ray" else _data_device(config))
    space = make_space(preset, config.dataset, config.seed)
    tier, bits = deployment(preset, config.dataset)

    def shape_of(arch):
        r = _resolution(space, arch, base)
        return (1, base.input_shape[0], r, r)

    def costs(arch):
        return _costs(space, arch, shape_of(arch), _build(space, preset, base, arch))

    def constraint(arch):
        return tier.violations(costs(arch)) if tier else []

    evaluate = CandidateTraining(config, preset, space, bits)
    strategy = _strategy(config, preset, space, constraint if tier else None)
    executor = make_executor(config)
    try:
        run.log(f"{type(strategy).__name__} over {space!r} on {config.dataset} ({device}); "
                f"budget {config.budget or 'the whole grid'} evaluations, {config.epochs} training epochs each"
                + (f"; constraint: {preset.tier} tier at {bits}-bit" if tier else "") + _executor_note(executor))
        budget = config.budget or (space.size() if config.strategy == "grid" else 1)
        result = search(strategy, evaluate, budget, constraint=constraint if tier else None,
                        checkpoint=run.file("checkpoint.json"), resume=resume, progress=config.progress,
                        callback=lambda t: run.log(_trial_line(t, _describer(space))), executor=executor)
    finally:
        if executor is not None:
            executor.close()
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
    if t.error:
        return f"trial {t.index}: {'failed' if t.status == 'failed' else 'repeat of a failure'}, {t.error.splitlines()[0]}  {arch}"
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
    failed = f", {len(result.failed)} failed (see results.json)" if result.failed else ""
    run.log(f"{result.evaluations} evaluations{skipped}{failed}")
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
    device = run_device(config)
    data = load_data(config)
    settings = dict(preset.strategy_settings)
    if config.epochs is not None:
        settings["epochs"] = config.epochs
        if "warmup_epochs" in settings:
            settings["warmup_epochs"] = min(settings["warmup_epochs"], config.epochs // 4)
    threads = 1 if device.type == "cpu" and config.dataset == "digits" else None
    common = dict(seed=config.seed, device=device, threads=threads, checkpoint=run.file("checkpoint.pt"),
                  resume=resume, progress=config.progress,
                  callback=lambda t: run.log(f"epoch {t.index + 1}: supernet val accuracy {t.score:.4f} "
                                             f"({t.metrics.get('seconds', 0):.1f} s)"))
    if config.strategy == "darts":
        if config.order is not None:
            settings["order"] = config.order
        settings["compile"] = config.compile
        cfg = DartsConfig(**settings)
        _check_global_batch(cfg.batch_size)
        run.log(f"DARTS ({cfg.order} order): {cfg.layers} cells, {cfg.init_channels} channels, batch "
                f"{cfg.batch_size}, {cfg.epochs} epochs on {data.name} ({device})" + _ranks_note())
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
    if run.writer:
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


class SubnetAccuracy:
    """`evaluate(arch)` of a once-for-all run: the sub-network's validation accuracy, taken from
    the trained supernet without retraining (BN recalibrated), and its costs. Picklable: for Ray
    the supernet travels on the CPU, and each worker moves it to its device and loads the data."""

    def __init__(self, config: RunConfig, supernet, bits: int, threads: int | None):
        self.config, self.supernet, self.bits, self.threads = config, supernet, bits, threads

    def __call__(self, arch: dict) -> dict:
        config, space = self.config, self.supernet.space
        device = self.supernet.head.weight.device if config.executor != "ray" else resolve_device(config.device)
        supernet = self.supernet.to(device)
        if config.dataset == "digits":
            data = {r: dataset_at(config, r, device) for r in space.config.resolutions}
        else:
            data = dataset_at(config, None, device)
        accuracy = supernet.evaluate(arch, data, split="val", seed=config.seed, threads=self.threads)
        c = space.costs(arch)
        return {"score": accuracy, "accuracy": accuracy, "macs": c.macs, "params": c.params,
                "peak_kb": c.peak_activations * self.bits / 8 / 1024}


def run_ofa(config: RunConfig, run: RunFolder, resume: bool) -> SearchResult | None:
    """Train the supernet (data-parallel on every rank under torchrun), then, on rank 0 only,
    evolution over its sub-networks (their evaluations in parallel with `executor="ray"`).
    The other ranks return None once the supernet is trained."""
    from edgeai.estimation.supernet import (Supernet, SupernetTrainConfig, load_supernet, save_supernet,
                                            train_supernet)

    preset = PRESETS[config.preset]
    device = run_device(config)
    space = network_space(preset, config.dataset)
    cpu = torch.device("cpu")  # train_supernet moves the data to the device once
    if config.dataset == "digits":
        data = {r: dataset_at(config, r, cpu) for r in space.config.resolutions}
    else:
        data = dataset_at(config, None, cpu)
    train = dict(preset.train_settings)
    if config.epochs is not None:
        train["epochs"] = config.epochs
    train_cfg = SupernetTrainConfig(seed=config.seed, **train)
    _check_global_batch(train_cfg.batch_size)
    threads = 1 if device.type == "cpu" and config.dataset == "digits" else None
    final = run.file("supernet.pt")
    if resume and final.exists():
        supernet = load_supernet(final, device)
        run.log(f"trained supernet loaded from {final}")
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            supernet = Supernet(space)
        run.log(f"training {supernet!r} ({train_cfg.rule}, {sum(train_cfg.phases_epochs())} epochs) on {device}"
                + _ranks_note())
        train_supernet(supernet, data, train_cfg, device=device, threads=threads,
                       checkpoint=run.file("supernet_checkpoint.pt"), resume=resume, progress=config.progress)
        if run.writer:
            save_supernet(supernet, final)
    if not dist.is_main():
        return None  # the search over the trained supernet runs on rank 0
    supernet.eval()
    tier, bits = deployment(preset, config.dataset)

    def constraint(arch):
        return tier.violations(space.costs(arch)) if tier else []

    executor = make_executor(config)
    if executor is not None:
        supernet.cpu()  # shipped to the workers once; each moves it to its own device
    evaluate = SubnetAccuracy(config, supernet, bits, threads)
    strategy = Evolution(space, seed=config.seed, constraint=constraint if tier else None, **preset.strategy_settings)
    try:
        run.log(f"evolution over the supernet's sub-networks: budget {config.budget} evaluations"
                + (f", {preset.tier} tier at {bits}-bit" if tier else "") + _executor_note(executor))
        result = search(strategy, evaluate, config.budget, constraint=constraint if tier else None,
                        checkpoint=run.file("checkpoint.json"), resume=resume, progress=config.progress,
                        callback=lambda t: run.log(_trial_line(t, space.describe)), executor=executor)
    finally:
        if executor is not None:
            executor.close()
    _finish_blackbox(run, result, space)
    return result


def run_device(config: RunConfig) -> torch.device:
    """The run's device; under torchrun each rank's own GPU (cuda:LOCAL_RANK)."""
    device = resolve_device(config.device)
    if dist.active() and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _check_global_batch(batch_size: int) -> None:
    if dist.active() and batch_size % dist.world_size():
        raise UserError(f"the global batch of {batch_size} does not split over {dist.world_size()} processes: "
                        f"use a number of processes that divides it")


def _ranks_note() -> str:
    return f", data-parallel over {dist.world_size()} processes (DDP)" if dist.active() else ""


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def run_search(config: RunConfig, out: str | os.PathLike, resume: bool = False, quiet: bool = False) -> SearchResult | None:
    """Run (or resume) the search `config` describes into the run folder `out`. Under torchrun
    (a process group of several ranks) every rank trains the supernet of a DARTS or once-for-all
    run and rank 0 alone writes the folder; the other ranks return None."""
    check_data(config)  # before anything is written: a missing dataset is one clear line
    if dist.active():
        preset = PRESETS[config.preset]
        if config.strategy not in ("darts",) and not preset.train_settings.get("rule"):
            raise UserError(f"torchrun trains one supernet on several processes: it runs darts and the once-for-all "
                            f"presets (ofa-evolution-*), not {config.preset}; spread a {config.strategy} search's "
                            f"candidates with --executor ray instead")
    run = RunFolder(out, quiet=quiet, writer=dist.is_main())
    if not resume:
        taken = run.file("config.json").exists()
        dist.barrier()  # every rank has looked before rank 0 writes
        if taken:
            raise UserError(f"{run.path} already holds a run; resume it with --resume {run.path} or pick another --out")
        preset = PRESETS[config.preset]
        run.write_json("config.json", {"run": config.to_dict(), "preset": dataclasses.asdict(preset)})
    dist.barrier()  # the folder exists before any rank reads or checks it
    run.log(("resuming" if resume else "starting") + f" {config.preset} (seed {config.seed}) in {run.path}")
    if config.strategy in ("darts", "proxyless"):
        result = run_gradient(config, run, resume)
    elif PRESETS[config.preset].train_settings.get("rule"):  # a supernet to train first: once-for-all style
        result = run_ofa(config, run, resume)
    else:
        result = run_blackbox(config, run, resume)
    run.log(f"results in {run.path}/ (results.json, results.csv, best.json, plots)")
    return result if dist.is_main() else None

