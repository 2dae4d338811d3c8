"""Where runs execute: in this process, in N worker processes, or on a Ray cluster.

An executor maps a picklable function over argument tuples and yields ``(index, result)`` as each
finishes, in completion order; a task that raised yields its exception as the result. Workers only
compute: the driver alone writes the store, so no two processes ever write one database.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from ..errors import PruneError

Task = tuple[Any, ...]
Outcome = Iterator[tuple[int, Any]]


class Sequential:
    """Runs every task in this process, one after another (the default; easiest to debug)."""

    name = "local"
    workers = 1

    def map(self, fn: Callable[..., Any], tasks: Sequence[Task]) -> Outcome:
        for i, args in enumerate(tasks):
            try:
                yield i, fn(*args)
            except Exception as err:  # recorded as a failed run; the sweep goes on
                yield i, err

    def close(self) -> None:
        """Nothing to release."""


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: leave as soon as the driver is gone (killed), instead of running on orphaned."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class Processes:
    """Runs tasks in ``workers`` fresh (spawned) processes on this machine; they exit with the driver."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_exit_with_parent, initargs=(os.getpid(),))

    def map(self, fn: Callable[..., Any], tasks: Sequence[Task]) -> Outcome:
        futures = {self._pool.submit(fn, *args): i for i, args in enumerate(tasks)}
        for fut in cf.as_completed(futures):
            err = fut.exception()
            yield futures[fut], err if err is not None else fut.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class Ray:
    """Runs tasks as Ray tasks (one CPU each) on a running cluster or a local instance.

    ``address=None`` starts a local instance with ``num_cpus`` CPUs; ``"auto"`` or
    ``"ray://host:10001"`` joins an existing cluster. Data directories must exist on every node.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise PruneError("the ray executor needs Ray: pip install 'prunekit[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
            if os.environ.get("PYTHONPATH"):  # workers import prunekit from where this process does
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
            if address is None:
                kwargs.update(num_cpus=num_cpus, include_dashboard=False)
            ray.init(**kwargs)
        self._owned = address is None
        self.workers = int(ray.available_resources().get("CPU", 1))

    def map(self, fn: Callable[..., Any], tasks: Sequence[Task]) -> Outcome:
        remote = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = {remote.remote(*args): i for i, args in enumerate(tasks)}
        pending = list(refs)
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield refs[ref], self._ray.get(ref)
                except self._ray.exceptions.RayTaskError as err:
                    yield refs[ref], err.as_instanceof_cause()

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


def make(kind: str = "local", workers: int = 1, address: str | None = None) -> Sequential | Processes | Ray:
    """An executor from CLI-style options: ``local`` with ``workers`` processes, or ``ray``."""
    if workers < 1:
        raise PruneError(f"--workers must be >= 1 (got {workers})")
    if kind == "local":
        return Sequential() if workers == 1 else Processes(workers)
    if kind == "ray":
        return Ray(address, None if address else workers)
    raise PruneError(f"unknown executor {kind!r}; allowed values: local, ray")
