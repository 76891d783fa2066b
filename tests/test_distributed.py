"""Data-parallel supernet training under torchrun (2 ranks, gloo, CPU): the weights after a few
steps equal a single process that sees the same global batches split into the same per-rank
micro-batches and averages their gradients (the oracle, written out here as a plain loop;
BatchNorm normalises per micro-batch in both), for the sandwich and the uniform rule and for
first- and second-order DARTS; every rank holds the same α and derives the same DARTS genotype;
only rank 0 writes checkpoints. This file is also the worker script torchrun runs.

Why a hand-written oracle and not `train_supernet` in one process over the global batch: DDP
without SyncBatchNorm (which needs CUDA and NCCL) normalises each rank's micro-batch with that
micro-batch's own statistics, so 2 ranks of B/2 compute another function than one process of B,
and no single-process call of the library reproduces that split. The oracle does the split by
hand and is otherwise the library's single-process path: with one micro-batch it equals
`train_supernet` (checked below), so the DDP tests check exactly the split and the all-reduce.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgeai.estimation.supernet as sn
from edgeai.data import Split, batches, digits
from edgeai.estimation.supernet import ELASTIC_DIMENSIONS, Supernet, SupernetTrainConfig, train_supernet
from edgeai.spaces.network import NetworkSpace, NetworkSpaceConfig
from edgeai.strategies.darts import DartsConfig, DartsSearch, darts_search
from edgeai.strategies.gradient import split_for_search

RANKS = 2
SPACE = NetworkSpaceConfig.digits(stages=((8, 1), (16, 2)), depths=(1, 2), kernels=(3, 5), expand_ratios=(2, 3),
                                  widths=(0.5, 1.0), resolutions=(8, 16))
# sandwich with in-place distillation: 3 sub-networks (several backward passes) per step, 4 steps;
# the uniform rule of the ofa-evolution-digits preset: 2 random sub-networks per step, no distillation
SUPERNET = {"sandwich": SupernetTrainConfig(epochs=1, batch_size=16, lr=0.1, num_random=1, seed=0),
            "uniform": SupernetTrainConfig(rule="uniform", epochs=1, batch_size=16, lr=0.1, num_random=2, seed=0)}
# second order (DARTS's paper) and first order (the darts-* presets' and DartsConfig's default)
DARTS = {"second": DartsConfig(init_channels=2, layers=3, steps=2, multiplier=2, epochs=2, batch_size=16, lr=0.05,
                               arch_lr=3e-2, order="second")}
DARTS["first"] = dataclasses.replace(DARTS["second"], order="first")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one CPU thread (conftest.py)


def supernet_data():
    return {r: digits(r, seed=0).with_train_subset(64, seed=0) for r in SPACE.resolutions}


def darts_data():
    return digits().with_train_subset(64, seed=0)  # 32 for w, 32 for α: 2 steps of 16 per epoch


def initial_supernet() -> Supernet:
    torch.manual_seed(0)
    return Supernet(NetworkSpace(SPACE))


# --------------------------------------------------------------------------------------------
# The worker: python -m torch.distributed.run --nproc-per-node 2 tests/test_distributed.py OUT
# --------------------------------------------------------------------------------------------


def worker(out: Path) -> None:
    import torch.distributed as torch_dist

    import edgeai.strategies.darts as darts_module
    import edgeai.strategies.gradient as gradient
    from edgeai import distributed as dist

    torch.set_num_threads(1)
    dist.init_from_env("cpu")
    rank = dist.rank()
    report = {}
    # every checkpoint write of this rank counted: the supernet's and the DARTS search's
    saves = {"supernet": 0, "darts": 0}
    real_supernet_save, real_darts_save = sn._save_checkpoint, gradient._save
    sn._save_checkpoint = lambda *a: (saves.__setitem__("supernet", saves["supernet"] + 1), real_supernet_save(*a))
    gradient._save = lambda *a: (saves.__setitem__("darts", saves["darts"] + 1), real_darts_save(*a))
    for rule, config in SUPERNET.items():
        net = initial_supernet()
        result = train_supernet(net, supernet_data(), config, threads=1, progress=False,
                                checkpoint=out / "supernet.pt" if rule == "sandwich" else None)
        torch.save(net.state_dict(), out / f"supernet-{rule}-rank{rank}.pt")
        report[f"supernet-{rule}-losses"] = result.losses

    searchers = []  # darts_search's DartsSearch, to read this rank's α and weights

    class Recorded(DartsSearch):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            searchers.append(self)

    darts_module.DartsSearch = Recorded
    for order, config in DARTS.items():
        darts = darts_search(darts_data(), config, seed=0, threads=1, progress=False,
                             checkpoint=out / "darts.pt" if order == "second" else None)
        torch.save(searchers[-1].model.state_dict(), out / f"darts-{order}-rank{rank}.pt")
        genotypes = [None] * RANKS
        torch_dist.all_gather_object(genotypes, darts.arch)
        report[f"darts-{order}-genotypes"] = genotypes
        report[f"darts-{order}-losses"] = [t.metrics["train_loss"] for t in darts.history]
    report["saves"] = saves
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> None:
    """`torchrun --nproc-per-node 2` on 127.0.0.1 and a free port, one thread per rank. The port
    is free when probed, but another program on a shared machine may take it before rank 0
    binds it: a failed launch is retried once on a new port (a real failure fails twice)."""
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={RANKS}", "--master-addr=127.0.0.1",
             f"--master-port={_free_port()}", *args],
            capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        if proc.returncode == 0:
            return
        outputs.append(proc.stdout[-3000:] + proc.stderr[-3000:])
    pytest.fail("torchrun failed twice:\n" + "\n----- retry -----\n".join(outputs))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torchrun(__file__, str(out))
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(RANKS)]
    return out, reports


# --------------------------------------------------------------------------------------------
# The single-process oracle: the same global batches, as per-rank micro-batches, gradients averaged
# --------------------------------------------------------------------------------------------


def micro_batched_supernet(config: SupernetTrainConfig, ranks: int = RANKS) -> Supernet:
    """`config`'s training, each global batch split into `ranks` micro-batches whose gradients are
    averaged (each normalised by BatchNorm on its own, as on its own rank)."""
    net = initial_supernet()
    inputs = sn.Inputs(supernet_data(), SPACE.resolutions)
    n = len(inputs.labels)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * (n // config.batch_size))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    rng, order = random.Random(config.seed), torch.Generator().manual_seed(config.seed)
    net.train()
    for index, y in batches(Split(torch.arange(n), inputs.labels), config.batch_size, rng=order, drop_last=True):
        opt.zero_grad(set_to_none=True)
        archs = sn._step_archs(net, rng, config, ELASTIC_DIMENSIONS)  # sandwich: largest, smallest, random
        for part, y_part in zip(index.chunk(ranks), y.chunk(ranks)):  # rank r's shard
            soft = None
            for i, arch in enumerate(archs):
                logits = net(inputs.train_batch(part, arch["resolution"]), arch)
                loss = loss_fn(logits, y_part)
                if soft is not None:
                    loss = loss + sn._soft_cross_entropy(logits, soft)
                (loss / ranks).backward()  # the mean over the ranks of each rank's gradient
                if i == 0 and config.rule == "sandwich" and config.distill:
                    soft = logits.detach()  # in-place distillation from the largest
        opt.step()
        sched.step()
    return net


class MicroBatchedDarts(DartsSearch):
    """DARTS whose every loss is the mean of the losses of the per-rank micro-batches."""

    def loss(self, x, y):
        return sum(F.cross_entropy(self.model(xs), ys) for xs, ys in zip(x.chunk(RANKS), y.chunk(RANKS))) / RANKS

    def weight_loss(self, x, y):
        logits = [self.model(xs) for xs in x.chunk(RANKS)]
        loss = sum(F.cross_entropy(lg, ys) for lg, ys in zip(logits, y.chunk(RANKS))) / RANKS
        return loss, torch.cat(logits)


def _parameters(net: nn.Module) -> dict:
    return {name: p.detach() for name, p in net.named_parameters()}  # not the BN running statistics


def test_the_oracle_with_one_micro_batch_is_train_supernet_in_one_process():
    """The oracle is the library's single-process training but for the split: the same
    sub-networks, batches, losses and optimiser steps."""
    for rule, config in SUPERNET.items():
        with torch.random.fork_rng(devices=[]):
            oracle = _parameters(micro_batched_supernet(config, ranks=1))
            net = initial_supernet()
            train_supernet(net, supernet_data(), config, threads=1, progress=False)
        for name, p in _parameters(net).items():
            torch.testing.assert_close(oracle[name], p, msg=f"{rule}: {name}")


@pytest.mark.xdist_group("ddp")
@pytest.mark.parametrize("rule", list(SUPERNET))
def test_ddp_supernet_equals_one_process_over_the_same_micro_batches(ranks, rule):
    out, reports = ranks
    with torch.random.fork_rng(devices=[]):
        reference = _parameters(micro_batched_supernet(SUPERNET[rule]))
    start = _parameters(initial_supernet())
    for r in range(RANKS):
        trained = torch.load(out / f"supernet-{rule}-rank{r}.pt")
        moved = 0
        for name, p in reference.items():
            torch.testing.assert_close(trained[name], p, rtol=1e-4, atol=1e-5, msg=f"rank {r}: {name}")
            moved += not torch.equal(p, start[name])
        assert moved > len(reference) // 2  # the steps really trained (not an equality of untouched weights)
    losses = reports[0][f"supernet-{rule}-losses"]
    assert losses == reports[1][f"supernet-{rule}-losses"] and len(losses) == 1  # averaged over the ranks


@pytest.mark.xdist_group("ddp")
@pytest.mark.parametrize("order", list(DARTS))
def test_ddp_darts_keeps_alpha_identical_and_equal_to_one_process(ranks, order):
    out, reports = ranks
    config = DARTS[order]
    genotypes = reports[0][f"darts-{order}-genotypes"]
    assert genotypes[0] == genotypes[1] and reports[1][f"darts-{order}-genotypes"] == genotypes  # every rank derives the same
    states = [torch.load(out / f"darts-{order}-rank{r}.pt") for r in range(RANKS)]
    data = darts_data()
    with torch.random.fork_rng(devices=[]):
        reference = MicroBatchedDarts(data.input_shape, data.num_classes, config, seed=0)
        initial = {name: p.clone() for name, p in _parameters(reference.model).items()}
        w_half, a_half = split_for_search(data.train, config.train_portion)
        for _ in range(config.epochs):
            reference.train_epoch(w_half, a_half)
    expected = _parameters(reference.model)
    for name in ("alpha_normal", "alpha_reduce"):
        # α the same bit for bit on every rank (each α gradient averaged over the ranks before Adam)
        assert torch.equal(states[1][name], states[0][name]), f"rank 1's {name} differs from rank 0's"
        assert not torch.allclose(states[0][name], initial[name], atol=1e-3)  # α really moved
    for r in range(RANKS):
        for name, p in expected.items():  # α and w
            torch.testing.assert_close(states[r][name], p, rtol=1e-4, atol=1e-5, msg=f"rank {r}: {name}")
    assert reference.derive() == genotypes[0]
    assert reports[0][f"darts-{order}-losses"] == reports[1][f"darts-{order}-losses"]
    if order == "second":  # rank 0's checkpoint holds what it trained
        saved = torch.load(out / "darts.pt", weights_only=False)["searcher"]["model"]
        for name, p in states[0].items():
            assert torch.equal(saved[name], p), name


@pytest.mark.xdist_group("ddp")
def test_only_rank_zero_writes_checkpoints(ranks):
    out, reports = ranks
    # the supernet: one write per epoch; DARTS: one per epoch and one when finished (run_epochs)
    assert reports[0]["saves"] == {"supernet": SUPERNET["sandwich"].epochs, "darts": DARTS["second"].epochs + 1}
    assert reports[1]["saves"] == {"supernet": 0, "darts": 0}, "rank 1 wrote a checkpoint"
    assert (out / "supernet.pt").exists() and (out / "darts.pt").exists()


@pytest.mark.xdist_group("ddp")
def test_edgeai_search_under_torchrun_trains_the_supernet_on_both_ranks(tmp_path):
    # the once-for-all preset: supernet data-parallel on 2 ranks, then evolution on rank 0
    out = tmp_path / "run"
    torchrun("-m", "edgeai", "search", "--preset", "ofa-evolution-digits", "--epochs", "1", "--budget", "2",
             "--device", "cpu", "--quiet", "--out", str(out))
    log = (out / "log.txt").read_text()
    assert "data-parallel over 2 processes (DDP)" in log
    assert log.count("starting ofa-evolution-digits") == 1  # rank 0 alone writes the run folder
    assert (out / "supernet.pt").exists()
    history = json.loads((out / "results.json").read_text())["history"]
    assert sum(t["status"] == "evaluated" for t in history) == 2


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
