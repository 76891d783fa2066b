"""Where `search` evaluates candidates: many at once, on existing engines (Ray), not on a
home-made scheduler.

A black-box search spends nearly all its time in `evaluate(arch)` (training a candidate), and
random search, grid search and a generation of evolution propose many candidates before they
need any score back. `search(strategy, evaluate, budget, executor=...)` therefore asks as many
architectures as the strategy allows (`Strategy.ready`), hands them to an executor, and tells
the results back in ask order, so that the history is the same on one worker or many:

    from edgeai.executors import RayExecutor
    executor = RayExecutor(num_cpus=1)                       # a local Ray on this machine's cores
    executor = RayExecutor(num_gpus=0.25, address="auto")    # an existing cluster, 4 trials per GPU
    result = search(Evolution(space, seed=0), evaluate, budget=500, executor=executor)
    executor.close()

Two executors share one small interface (what `search` calls):

    workers                  how many evaluations run at once
    submit(fn, *args)        start fn(*args) somewhere; returns a handle
    wait(handles)            block until at least one of `handles` is done; the done ones
    result(handle)           what fn returned (raises if the worker itself died)
    cancel(handles)          give up on evaluations still running (an interrupted search)
    close()                  release the workers

`RayExecutor`   each evaluation is a Ray task with its own CPU and (fractional) GPU resources,
                on a local Ray or an existing cluster (`ray start --head` on one machine,
                `ray start --address HEAD:6379` on the others, then `address="auto"`).
                Ray is an optional extra (`pip install edgeai[ray]`), imported only here.
`ThreadExecutor` a thread pool in this process: PyTorch releases the GIL in its kernels, so
                small CPU trainings do overlap; mostly it lets tests and notebooks run the
                parallel driver without a cluster.

`evaluate` must be picklable for Ray (a module-level function, or a closure over picklable
data: Ray's cloudpickle ships closures and lambdas). It is put in Ray's object store once per
search, not once per trial. Ray sets each task's OMP_NUM_THREADS to its `num_cpus`, so a
`num_cpus=1` trial trains on one thread, as the course's digits candidates should.
"""

from __future__ import annotations

import concurrent.futures
import math
from typing import Any, Callable

__all__ = ["Executor", "RayExecutor", "ThreadExecutor"]


class Executor:
    """The interface `search(..., executor=...)` needs (see the module docstring)."""

    workers: int = 1

    def submit(self, fn: Callable, *args) -> Any:
        raise NotImplementedError

    def wait(self, handles: list) -> list:
        raise NotImplementedError

    def result(self, handle):
        raise NotImplementedError

    def cancel(self, handles: list) -> None:
        """Give up on evaluations still running (default: let them finish unobserved)."""

    def close(self) -> None:
        """Release the workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class ThreadExecutor(Executor):
    """`workers` threads of this process."""

    def __init__(self, workers: int = 2):
        self.workers = _positive_int("workers", workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgeai-eval")

    def submit(self, fn: Callable, *args) -> concurrent.futures.Future:
        return self._pool.submit(fn, *args)

    def wait(self, handles: list) -> list:
        done, _ = concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)
        return [h for h in handles if h in done]  # in submission order: reproducible bookkeeping

    def result(self, handle: concurrent.futures.Future):
        return handle.result()

    def cancel(self, handles: list) -> None:
        for h in handles:
            h.cancel()  # a running thread cannot be stopped: it finishes unobserved

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"ThreadExecutor(workers={self.workers})"


def _call(fn: Callable, *args):
    """The Ray task: `fn` arrives from the object store, resolved by Ray."""
    return fn(*args)


class RayExecutor(Executor):
    """Each evaluation a Ray task with `num_cpus` CPUs and `num_gpus` GPUs (fractional: 0.25 lets
    four small trials share a card; Ray sets CUDA_VISIBLE_DEVICES, so the trial's "cuda" is
    its card).

    address      None: start a local Ray on this machine (`init` holds extra `ray.init`
                 arguments, e.g. num_cpus=2); "auto": the cluster this machine belongs to
                 (`ray start --head`); "ray://HOST:10001": a remote cluster through Ray Client.
                 If Ray is already initialised in this process, that session is used as it is.
    max_parallel how many trials run at once (None: as many as the cluster's CPUs and GPUs
                 hold, counted when the executor is made)
    """

    def __init__(self, num_cpus: float = 1, num_gpus: float = 0, address: str | None = None,
                 max_parallel: int | None = None, init: dict | None = None):
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or not num_cpus > 0:
            raise ValueError(f"num_cpus must be a positive number of CPUs per trial, got {num_cpus!r}")
        if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or num_gpus < 0:
            raise ValueError(f"num_gpus must be a number >= 0 of GPUs per trial (0.25: four trials share one), got {num_gpus!r}")
        if num_gpus > 1 and num_gpus != int(num_gpus):
            raise ValueError(f"num_gpus above 1 must be a whole number of GPUs, got {num_gpus!r}")
        if max_parallel is not None:
            _positive_int("max_parallel", max_parallel)
        try:
            import ray
        except ImportError:
            raise ImportError("RayExecutor needs Ray: pip install 'edgeai[ray]' (or pip install ray)") from None
        self._ray = ray
        self.num_cpus, self.num_gpus, self.address = num_cpus, num_gpus, address
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs = dict(include_dashboard=False) if address is None else {}  # a cluster keeps its own settings
            kwargs.update(init or {})
            ray.init(address=address, **kwargs)
        elif init:
            raise ValueError("Ray is already initialised in this process: init arguments would be ignored")
        self._task = ray.remote(_call)
        self._functions: dict[int, tuple[Callable, Any]] = {}  # id(fn) -> (fn, its object ref)
        if max_parallel is None:
            resources = ray.cluster_resources()
            fit = [math.floor(resources.get("CPU", 0) / num_cpus + 1e-9)]
            if num_gpus:
                fit.append(math.floor(resources.get("GPU", 0) / num_gpus + 1e-9))
            max_parallel = min(fit)
            if max_parallel < 1:
                raise ValueError(f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs) "
                                 f"cannot hold one trial of {num_cpus} CPUs and {num_gpus} GPUs")
        self.workers = max_parallel

    def submit(self, fn: Callable, *args):
        fn, *args = (self._shared(v) for v in (fn, *args))
        options = dict(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)
        return self._task.options(**options).remote(fn, *args)  # Ray resolves the refs in the worker

    def _shared(self, value):
        """A callable (the evaluate function and what it closes over) goes to Ray's object store
        once per executor, not once per trial; other arguments (an architecture) go as they are."""
        if not callable(value):
            return value
        entry = self._functions.get(id(value))
        if entry is None or entry[0] is not value:
            entry = self._functions[id(value)] = (value, self._ray.put(value))
        return entry[1]

    def wait(self, handles: list) -> list:
        ready, _ = self._ray.wait(handles, num_returns=1)
        more, _ = self._ray.wait(handles, num_returns=len(handles), timeout=0)  # everything else done by now
        done = set(ready) | set(more)
        return [h for h in handles if h in done]

    def result(self, handle):
        return self._ray.get(handle)

    def cancel(self, handles: list) -> None:
        for h in handles:
            self._ray.cancel(h, force=False)

    def close(self) -> None:
        self._functions.clear()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()

    def __repr__(self) -> str:
        return (f"RayExecutor(num_cpus={self.num_cpus}, num_gpus={self.num_gpus}, address={self.address!r}, "
                f"workers={self.workers})")
