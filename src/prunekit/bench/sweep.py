"""Drive a sweep: register the grid in the store, train missing base models, run pending runs.

The driver is the only writer of the store; executors only compute. Base models are trained first
(each once), saved atomically under ``DIR/bases/``, and handed to the runs by value so that workers
on other machines need no shared disk.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import PruneError
from . import runner
from .config import BaseSpec, ExperimentConfig, RunSpec
from .executors import Sequential
from .store import Store
from .zoo import load_data


class ResumeError(PruneError):
    """The output directory already holds runs and ``--resume`` was not given."""


@dataclass
class Outcome:
    """What a sweep did: counts of runs by what happened to them."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sweep(
    config: ExperimentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    executor: Any = None,
    env: runner.Env | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    train_fn: Callable[..., dict] = runner.train_base,
    run_fn: Callable[..., dict] = runner.run,
) -> Outcome:
    """Run every run of ``config`` not yet finished in ``out``; returns what happened.

    ``progress(label, completed, total)`` is called after each finished task.
    """
    executor = executor or Sequential()
    env = env or runner.Env(data_dir=config.data_dir)
    out, started = Path(out), time.perf_counter()
    if executor.name == "local":  # a missing or broken dataset is one clear error, not N failed runs
        for dataset in config.datasets:
            load_data(dataset, env.data_dir, config.val_fraction)
    store = Store(out)
    try:
        specs = config.runs()
        known = store.status(s.id for s in specs)
        if known and not resume:
            raise ResumeError(
                f"{out} already holds {len(known)} runs of this sweep; pass --resume to continue it "
                "or choose a new --out directory"
            )
        store.set_meta("config", config.model_dump_json())
        store.add(specs)
        store.requeue_interrupted()
        status = store.status(s.id for s in specs)
        todo = [s for s in specs if status[s.id] != "done"]
        result = Outcome(skipped=len(specs) - len(todo))
        bases = _ensure_bases(store, out / "bases", todo, executor, env, train_fn, progress)
        result.failed += [(s.id, "its base model failed") for s in todo if s.base.id not in bases]
        todo = [s for s in todo if s.base.id in bases]
        for s in todo:
            store.start(s.id)
        tasks = [(s, bases[s.base.id][0], bases[s.base.id][1], env) for s in todo]
        for n, (i, res) in enumerate(executor.map(run_fn, tasks), 1):
            spec = todo[i]
            if isinstance(res, BaseException):
                store.fail(spec.id, _reason(res))
                result.failed.append((spec.id, _reason(res)))
            else:
                store.finish(spec.id, res["metrics"], res["epochs"])
                result.done += 1
            if progress:
                progress(f"{spec.base.model} {spec.method.name} ×{spec.compression:g}", n, len(tasks))
        store.add_session({"executor": executor.name, "workers": executor.workers, "done": result.done,
                           "skipped": result.skipped, "failed": len(result.failed),
                           "wall_s": time.perf_counter() - started})
        return result
    finally:
        store.close()


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


def _ensure_bases(
    store: Store,
    folder: Path,
    todo: list[RunSpec],
    executor: Any,
    env: runner.Env,
    train_fn: Callable[..., dict],
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, tuple[bytes, dict]]:
    """Base id → (state-dict bytes, metrics) for every base the pending runs need, training missing ones."""
    folder.mkdir(parents=True, exist_ok=True)
    needed: dict[str, BaseSpec] = {s.base.id: s.base for s in todo}
    ready: dict[str, tuple[bytes, dict]] = {}
    missing: list[BaseSpec] = []
    for bid, base in needed.items():
        metrics, path = store.base_metrics(bid), folder / f"{bid}.pt"
        if metrics is not None and path.exists():
            ready[bid] = (path.read_bytes(), metrics)
        else:
            missing.append(base)
    for n, (i, res) in enumerate(executor.map(train_fn, [(b, env) for b in missing]), 1):
        base = missing[i]
        if isinstance(res, BaseException):
            store.fail_base(base.id, _reason(res))
            continue
        _write_atomic(folder / f"{base.id}.pt", res["state"])
        store.finish_base(base, res["metrics"], res["epochs"])
        ready[base.id] = (res["state"], res["metrics"])
        if progress:
            progress(f"base {base.dataset}/{base.model} seed {base.seed}", n, len(missing))
    return ready
