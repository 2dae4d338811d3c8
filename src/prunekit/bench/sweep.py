"""Drive a sweep: register the grid in the store, train missing base models, run pending runs.

The driver is the only writer of the store; executors only compute. Base models are trained first
(each once), saved atomically under ``DIR/bases/``, and handed to the runs by value so that workers
on other machines need no shared disk.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import PruneError, StoreError
from . import runner
from .config import BaseSpec, ConfigError, ExperimentConfig, RunSpec
from .executors import Sequential
from .store import Store, locked
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


MAX_RUNS = 10_000  # a larger grid needs allow_large=True (`--yes`): a typo in a list should not start a month of work


def config_id(config: ExperimentConfig) -> str:
    """The identity of what a config computes: every setting but its name and where its data lives."""
    text = json.dumps(config.model_dump(mode="json", exclude_defaults=True, exclude={"name", "data_dir"}),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_folder(store: Store, config: ExperimentConfig, out: Path, resume: bool) -> None:
    """A folder holds one config's runs: refuse another config, and the same one without ``resume``."""
    stored, ours = store.meta("config_id"), config_id(config)
    registered = store.run_ids()
    if not registered:
        return
    other = stored != ours if stored is not None else bool(registered - {s.id for s in config.runs()})
    if other:
        raise StoreError(
            f"{out} holds {len(registered)} runs of another config; a results folder holds one config's runs, "
            "so choose a new --out (or run the config it was made with)"
        )
    if not resume:
        raise ResumeError(f"{out} already holds {len(registered)} runs of this sweep; pass --resume to continue "
                          "it or choose a new --out directory")


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
    allow_large: bool = False,
) -> Outcome:
    """Run every run of ``config`` not yet finished in ``out``; returns what happened.

    ``out`` holds one config's runs: another config is refused, and so is the same one again unless
    ``resume``. A second sweep on ``out`` while one runs is refused. Grids above :data:`MAX_RUNS`
    runs need ``allow_large``. ``progress(label, completed, total)`` is called after each finished task.
    """
    if config.size() > MAX_RUNS and not allow_large:
        raise ConfigError(f"config {config.name!r} expands to {config.size():,} runs (more than {MAX_RUNS:,}); "
                          "check its lists, or pass --yes to run them all")
    executor = executor or Sequential()
    env = env or runner.Env(data_dir=config.data_dir)
    out, started = Path(out), time.perf_counter()
    if executor.name == "local":  # a missing or broken dataset is one clear error, not N failed runs
        for dataset in config.datasets:
            load_data(dataset, env.data_dir, config.val_fraction)
    with locked(out):
        store = Store(out)
        try:
            _check_folder(store, config, out, resume)
            return _sweep(store, config, out, executor, env, progress, train_fn, run_fn, started)
        finally:
            store.close()


def _sweep(store: Store, config: ExperimentConfig, out: Path, executor: Any, env: runner.Env,
           progress: Callable[[str, int, int], None] | None, train_fn: Callable[..., dict],
           run_fn: Callable[..., dict], started: float) -> Outcome:
    specs = config.runs()
    store.set_meta("config", config.model_dump_json())
    store.set_meta("config_id", config_id(config))
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
        reason = _reason(res) if isinstance(res, BaseException) else _diverged(res["metrics"])
        if reason:
            store.fail(spec.id, reason)
            result.failed.append((spec.id, reason))
        else:
            store.finish(spec.id, res["metrics"], res["epochs"])
            result.done += 1
        if progress:
            progress(f"{spec.base.model} {spec.method.name} ×{spec.compression:g}", n, len(tasks))
    store.add_session({"executor": executor.name, "workers": executor.workers, "done": result.done,
                       "skipped": result.skipped, "failed": len(result.failed),
                       "wall_s": time.perf_counter() - started})
    return result


def _diverged(metrics: dict[str, Any]) -> str | None:
    """Why a result is not a result: a loss that is NaN or infinite means training diverged."""
    bad = sorted(k for k, v in metrics.items() if k.endswith("loss") and isinstance(v, float) and not math.isfinite(v))
    if bad:
        return f"training diverged ({bad[0]} is {metrics[bad[0]]}); lower the learning rate"
    return None


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


def _saved_base(path: Path, sha256: str | None) -> bytes | None:
    """A saved base's bytes if they are intact (digest, or a safe load for older folders); None to retrain.

    A base truncated by a crash or damaged on disk is retrained rather than failing every run that needs it.
    """
    try:
        state = path.read_bytes()
    except OSError:
        return None
    if sha256 is not None:
        return state if hashlib.sha256(state).hexdigest() == sha256 else None
    try:
        runner.unpack_base(state)
    except Exception:  # noqa: BLE001 - any failure to read it back means it must be trained again
        return None
    return state


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
        metrics, state = store.base_metrics(bid), _saved_base(folder / f"{bid}.pt", store.meta(f"base_sha256:{bid}"))
        if metrics is not None and state is not None:
            ready[bid] = (state, metrics)
        else:
            missing.append(base)
    for n, (i, res) in enumerate(executor.map(train_fn, [(b, env) for b in missing]), 1):
        base = missing[i]
        reason = _reason(res) if isinstance(res, BaseException) else _diverged(res["metrics"])
        if reason:
            store.fail_base(base.id, reason)
            continue
        _write_atomic(folder / f"{base.id}.pt", res["state"])
        store.finish_base(base, res["metrics"], res["epochs"], hashlib.sha256(res["state"]).hexdigest())
        ready[base.id] = (res["state"], res["metrics"])
        if progress:
            progress(f"base {base.dataset}/{base.model} seed {base.seed}", n, len(missing))
    return ready
