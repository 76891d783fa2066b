"""One supernet on many GPUs: data-parallel training with torch.distributed (torchrun, DDP).

A weight-sharing supernet (once-for-all, DARTS) is one model trained for many epochs: the way to
make it faster is data parallelism. `torchrun --nproc-per-node N` starts N processes (ranks),
one per GPU; each holds a replica of the supernet and, every step:

    1. takes its own shard of the global batch (rank r: samples [r·B/N, (r+1)·B/N) of a global
       batch drawn from the same seeded permutation on every rank: a DistributedSampler in
       effect, without a sampler object)
    2. samples the SAME sub-network as every other rank (the sampling rng is seeded identically
       on every rank and consumed identically, so no communication is needed)
    3. computes the loss on its shard; DistributedDataParallel averages the gradients over the
       ranks during backward (`find_unused_parameters=True` where a sub-network leaves weights
       unused: a smaller kernel's transformation matrix, skipped blocks). The sub-networks of a
       sandwich step add up their gradients locally (`no_sync`) and the last one's backward
       averages the sum: one all-reduce per step, not one per sub-network
    4. takes the same optimiser step, so the replicas stay identical

so N ranks with B/N samples each compute what one process computes when it averages the
gradients of the N micro-batches (gradient accumulation), up to float rounding.

BatchNorm is per rank: each rank normalises with its own micro-batch's statistics
(SyncBatchNorm, which would pool them, needs CUDA and NCCL; it does not run on CPU/gloo, and
the course's tests run on CPU). The running statistics are rank 0's: DDP broadcasts its buffers
before each forward, and every evaluation of a sub-network recalibrates them anyway.

DARTS (the known failure of other frameworks: ranks deriving different architectures): the
weight step runs through DDP; the architecture step computes ∇α on the plain module (DDP's hooks
expect `.backward()`, the Architect uses `torch.autograd.grad`) and averages every gradient it
computes over the ranks before use (`all_reduce_mean`), so α, its Adam state and the derived
genotype are identical on every rank. DDP's constructor broadcasts rank 0's weights and α.

Only rank 0 writes checkpoints, logs and shows progress bars; every rank reads a checkpoint to
resume.

    torchrun --nproc-per-node 2 -m edgeai search --preset ofa-evolution-cifar10 --data-dir data
    torchrun --nproc-per-node 2 -m edgeai search --preset darts-cifar10 --data-dir data

On CPU the backend is gloo (what the tests use: 2 processes on the digits), on GPUs NCCL.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.distributed as dist

__all__ = [
    "active",
    "rank",
    "world_size",
    "is_main",
    "launched",
    "init_from_env",
    "shutdown",
    "barrier",
    "shard",
    "all_reduce_mean",
    "wrap",
]


def active() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 (or no process group): the one that writes files and shows progress."""
    return rank() == 0


def launched() -> bool:
    """Started by torchrun with more than one process (WORLD_SIZE > 1 in the environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str | torch.device = "auto") -> torch.device:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in
    the environment): NCCL when this rank trains on a GPU, else gloo. Returns this rank's device:
    "cuda:LOCAL_RANK" for "auto"/"cuda" when GPUs are there, else the CPU."""
    device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          "cpu" if device == "auto" else device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def shard(batch: torch.Tensor, rank_: int | None = None, world: int | None = None) -> torch.Tensor:
    """This rank's contiguous part of a global batch (B must be a multiple of the world size)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    n = batch.shape[0]
    if n % world:
        raise ValueError(f"a global batch of {n} does not split evenly over {world} ranks: "
                         f"make batch_size a multiple of {world}")
    per = n // world
    return batch[rank_ * per:(rank_ + 1) * per]


def all_reduce_mean(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The average of each tensor over the ranks (new tensors; the inputs are left alone).
    Without a process group: the tensors as they are."""
    if not active():
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])  # one collective, not one per tensor
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    out, start = [], 0
    for t in tensors:
        out.append(flat[start:start + t.numel()].view(t.shape).to(t.dtype))
        start += t.numel()
    return out


def wrap(module: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False):
    """`module` in DistributedDataParallel (rank 0's weights broadcast to every rank)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
