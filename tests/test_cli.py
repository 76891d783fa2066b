"""The `edgeai` command: argument handling, presets resolving to the papers' numbers, the CIFAR-10
path on generated files, kill-and-resume equality, and `edgeai demo` end to end."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeai import runs
from edgeai.cli import main
from edgeai.presets import PRESETS, default_preset
from edgeai.strategies.darts import DartsConfig
from edgeai.strategies.proxyless import ProxylessConfig

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeai", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------ bad arguments: one line, exit 2


@pytest.mark.parametrize("args, message", [
    (["search", "--strategy", "annealing"], "argument --strategy: invalid choice: 'annealing'"),
    (["search", "--strategy", "darts", "--budget", "10"], "use --epochs, not --budget"),
    (["search", "--strategy", "darts", "--dataset", "cifar10"], "--download"),
    (["search", "--strategy", "darts", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "add --download"),
    (["search", "--strategy", "random", "--order", "second"], "--order applies to DARTS only"),
    (["search", "--strategy", "random", "--budget", "0"], "is not a positive integer"),
    (["search", "--preset", "darts-cifar10", "--strategy", "random"], "runs strategy 'darts', not 'random'"),
    (["search", "--strategy", "darts", "--space", "nasnet"], "does not go with --strategy darts"),
    (["search"], "say which strategy to run"),
    (["search", "--preset", "ofa-evolution-digits", "--compile"], "would recompile every time"),
    (["search", "--strategy", "proxyless", "--compile"], "would recompile every time"),
    (["profile", "alexnet"], "argument MODEL: invalid choice: 'alexnet'"),
    (["profile", "resnet50", "--input", "1x3xbig"], "is not a shape like 1x3x224x224"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_bad_arguments_get_one_clear_line(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        code = main(args + (["--out", str(tmp_path / "run")] if args[0] == "search" and len(args) > 1 else []))
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_resume_of_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["search", "--resume", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_profile_prints_the_table(capsys):
    assert main(["profile", "mobilenet_v2"]) == 0
    out = capsys.readouterr().out
    assert "300,774,272" in out and "3,504,872" in out  # Sandler et al.: 300M MACs, 3.4-3.5M params


# ------------------------------------------------------------------ presets: the papers' numbers


def test_darts_preset_is_the_papers_setting():
    # Liu et al. 2019, Section 5.1 / train_search.py
    cfg = DartsConfig(**PRESETS["darts-cifar10"].strategy_settings)
    assert (cfg.layers, cfg.init_channels, cfg.batch_size, cfg.epochs) == (8, 16, 64, 50)
    assert (cfg.lr, cfg.lr_min, cfg.momentum, cfg.weight_decay) == (0.025, 0.001, 0.9, 3e-4)
    assert (cfg.arch_lr, cfg.arch_weight_decay, cfg.arch_betas) == (3e-4, 1e-3, (0.5, 0.999))
    assert (cfg.train_portion, cfg.grad_clip, cfg.order) == (0.5, 5.0, "first")
    assert default_preset("darts", "cifar10").name == "darts-cifar10"


def test_once_for_all_evolution_preset():
    # Cai et al. 2019, EvolutionFinder: population 100, 25 parents, mutate_prob 0.1, ratio 0.5, 500 generations
    p = PRESETS["ofa-evolution-cifar10"]
    assert p.strategy_settings == dict(population_size=100, parents=25, mutate_prob=0.1, mutation_ratio=0.5)
    assert p.budget == 100 * 500


def test_proxyless_and_other_presets_build_their_configs():
    cfg = ProxylessConfig(**PRESETS["proxyless-cifar10"].strategy_settings)
    assert (cfg.epochs, cfg.warmup_epochs, cfg.lr, cfg.arch_lr, cfg.arch_every) == (160, 40, 0.025, 1e-3, 5)
    assert (cfg.loss, cfg.reg_alpha, cfg.reg_beta) == ("mul", 0.2, 0.3)
    assert PRESETS["tinynas-cifar10"].tier == "tiny"
    for preset in PRESETS.values():  # every preset names a source and resolves
        assert preset.source and preset.description
        config = runs.resolve(None, None, preset.name)
        assert (config.preset, config.strategy, config.dataset) == (preset.name, preset.strategy, preset.dataset)
        if preset.strategy in ("grid", "random", "evolution", "reinforce"):
            space = runs.make_space(preset, preset.dataset, seed=0)
            assert space.size() > 1


# ------------------------------------------------------------------ CIFAR-10 on generated files


def write_cifar10(folder: Path, per_batch: int = 1100, seed: int = 0) -> None:
    """Files in the real format: pickled dicts with bytes keys, uint8 rows of 3072 values (5 x 1100
    training images: enough for the standard 5000-image validation split to leave 500 to train)."""
    rng = np.random.default_rng(seed)
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch}, f)


def test_cifar10_search_runs_on_generated_files(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data")
    seen = []

    class Trained:  # candidates are trained by train_and_evaluate on the GPU; here only the data path is checked
        val_accuracy = 0.5

    def fake_train(factory, data, epochs, **kw):
        seen.append((data.name, data.input_shape, len(data.train), len(data.val), epochs, kw["device"].type,
                     kw["compile"]))
        assert factory()(data.val.x[:2]).shape == (2, 10)  # the candidate runs on the CIFAR images
        return Trained()

    monkeypatch.setattr(runs, "train_and_evaluate", fake_train)
    out = tmp_path / "run"
    assert main(["search", "--preset", "random-cifar10", "--data-dir", str(tmp_path / "data"), "--budget", "3",
                 "--device", "cpu", "--compile", "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert sum(t["status"] == "evaluated" for t in result["history"]) == 3
    run_config = json.loads((out / "config.json").read_text())["run"]
    assert run_config["dataset"] == "cifar10" and run_config["compile"] is True
    # 5 x 1100 images: 5000 for validation (the standard split), 500 to train; resized to the
    # candidate's resolution; 10 epochs per candidate (the preset)
    assert {s[2:] for s in seen} == {(500, 5000, 10, "cpu", True)}  # --compile reaches the training
    assert {s[1] for s in seen} <= {(3, 24, 24), (3, 28, 28), (3, 32, 32)}


# ------------------------------------------------------------------ kill and resume


def _fake_proxy(calls, die_at=None):
    def proxy(factory, data, seed, epochs, **kw):
        calls.append(1)
        if die_at is not None and len(calls) == die_at:
            raise KeyboardInterrupt
        model = factory()  # deterministic stand-in for training: a function of the architecture
        return round(0.5 + (sum(p.numel() for p in model.parameters()) % 997) / 2000, 6)
    return proxy


def _history(path: Path):
    return [(json.dumps(t["arch"], sort_keys=True), t["score"], t["status"])
            for t in json.loads(path.read_text())["history"]]


def test_killed_search_resumes_to_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "proxy_accuracy", _fake_proxy([]))
    assert main(["search", "--preset", "tinynas-digits", "--budget", "8", "--out", str(tmp_path / "full"), "--quiet"]) == 0

    monkeypatch.setattr(runs, "proxy_accuracy", _fake_proxy([], die_at=5))
    assert main(["search", "--preset", "tinynas-digits", "--budget", "8", "--out", str(tmp_path / "killed"), "--quiet"]) == 130
    partial = json.loads((tmp_path / "killed" / "checkpoint.json").read_text())
    assert sum(t["status"] == "evaluated" for t in partial["history"]) == 4

    calls = []
    monkeypatch.setattr(runs, "proxy_accuracy", _fake_proxy(calls))
    assert main(["search", "--resume", str(tmp_path / "killed"), "--quiet"]) == 0
    assert len(calls) == 4  # only the missing evaluations ran again
    assert _history(tmp_path / "killed" / "results.json") == _history(tmp_path / "full" / "results.json")


def test_killed_gradient_search_resumes_to_the_same_alphas(tmp_path, monkeypatch):
    # ProxylessNAS on the digits (DARTS shares the epoch loop and its checkpoints; its own
    # resume test is in test_darts.py)
    from edgeai.strategies import proxyless

    args = ["search", "--strategy", "proxyless", "--epochs", "3", "--quiet"]
    original = proxyless.ProxylessSearch.train_epoch
    state = {"n": 0}

    def dies_in_epoch_2(self, *a, **kw):
        state["n"] += 1
        if state["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    monkeypatch.setattr(proxyless.ProxylessSearch, "train_epoch", dies_in_epoch_2)
    assert main(args + ["--out", str(tmp_path / "killed")]) == 130
    monkeypatch.setattr(proxyless.ProxylessSearch, "train_epoch", original)
    table = tmp_path / "killed" / "latency_table.json"
    assert table.exists()  # measured once, kept for the resumed run
    # the uninterrupted run uses the same measured table (timings differ from run to run)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "latency_table.json").write_text(table.read_text())
    assert main(args + ["--out", str(tmp_path / "full")]) == 0

    assert main(["search", "--resume", str(tmp_path / "killed"), "--quiet"]) == 0
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert len(resumed["alphas"]) == 3
    assert resumed["alphas"] == full["alphas"] and resumed["arch"] == full["arch"]
    assert [t["score"] for t in resumed["history"]] == [t["score"] for t in full["history"]]


def test_an_existing_run_is_not_overwritten(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "proxy_accuracy", _fake_proxy([]))
    out = str(tmp_path / "run")
    assert main(["search", "--strategy", "random", "--budget", "1", "--out", out, "--quiet"]) == 0
    assert main(["search", "--strategy", "random", "--budget", "1", "--out", out, "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err


# ------------------------------------------------------------------ the demo, for real


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--budget", "2", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Pareto front" in proc.stdout and str(out) in proc.stdout
    for name in ("config.json", "log.txt", "results.json", "results.csv", "best.json", "pareto.png", "search_curve.png"):
        assert (out / name).exists(), name
    best = json.loads((out / "best.json").read_text())
    assert 0.1 < best["score"] <= 1.0 and best["metrics"]["peak_kb"] <= 320
    assert os.path.getsize(out / "pareto.png") > 10_000
