"""One base model and one run, as pure functions of their specs (so any executor can call them).

``train_base`` trains (or loads) the dense model once per dataset/model/seed. ``run`` prunes a copy of
it, fine-tunes with the checkpoint chosen on validation, and measures accuracy, size, compute and
latency. Both return plain data; the sweep driver stores it.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ..training.callbacks import Callback, History
from ..errors import PruneError
from .config import BaseSpec, RunSpec, TrainSettings
from .deploy import deploy, file_bytes, latencies
from .methods import GradualSettings
from .zoo import create_model, load_data


@dataclass(frozen=True)
class Env:
    """Where and how to compute, not what: never part of a run's identity."""

    data_dir: str | None = None
    threads: int = 1


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def environment() -> dict[str, Any]:
    """Versions and machine, recorded with every run."""
    import prunekit

    return {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "prunekit_version": prunekit.__version__,
        "machine": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _evaluate(model: nn.Module, prefix: str, val: Any, test: Any) -> dict[str, float]:
    from .. import evaluate

    out = {f"{prefix}test_{k}": v for k, v in evaluate(model, test).items()}
    if val is not None:
        out.update({f"{prefix}val_{k}": v for k, v in evaluate(model, val).items()})
    return out


def _options(settings: TrainSettings) -> dict[str, Any]:
    return settings.model_dump(exclude={"steps"} if settings.steps is None else {"epochs"})


def _train(model: nn.Module, train: Any, val: Any, settings: TrainSettings, seed: int,
           callbacks: tuple[Callback, ...] = ()) -> list[dict]:
    from .. import train as fit

    options = _options(settings)
    if options.get("epochs") == 0:
        return []
    history = fit(model, train, val, seed=seed, restore_best=val is not None, progress=False,
                  callbacks=callbacks, **options)
    return history.records


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float]) -> dict[str, float]:
    wall, cpu = _clock()
    return {"wall_s": wall - start[0], "cpu_s": cpu - start[1]}


def train_base(spec: BaseSpec, env: Env) -> dict[str, Any]:
    """Train (or load ``spec.weights``) the dense model; returns its state-dict bytes, metrics, epochs.

    With ``spec.rewind_steps`` the bytes hold ``{"state_dict": …, "rewind": {step: weights}}``, the
    weights of those training steps for methods that rewind to them.
    """
    from .. import models
    from ..training.rewind import Snapshot

    start = _clock()
    with _threads(env.threads):
        train, val, test = load_data(spec.dataset, env.data_dir, spec.val_fraction)
        model = create_model(spec.model, train, spec.seed)
        snaps = tuple(Snapshot(k) for k in spec.rewind_steps)
        if spec.weights:
            models.load_weights(model, spec.weights)
            epochs = []
        else:
            epochs = _train(model, train, val, spec.train, spec.seed, snaps)
        metrics = _evaluate(model, "", val, test)
        payload: dict[str, Any] = model.state_dict()
        if snaps:
            payload = {"state_dict": payload, "rewind": {s.step: s.state for s in snaps if s.state is not None}}
        buf = io.BytesIO()
        torch.save(payload, buf)
    return {"state": buf.getvalue(), "metrics": {**metrics, **_elapsed(start)}, "epochs": epochs}


def _score_data(spec: RunSpec, train: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from ..data import batches

    gen = torch.Generator().manual_seed(spec.base.seed)
    it = batches(train, spec.finetune.batch_size, shuffle=True, generator=gen)
    return [b for b, _ in zip(it, range(spec.method.score_batches))]


def _measure(spec: RunSpec, dense: nn.Module, model: nn.Module, test: Any) -> dict[str, Any]:
    """Deployed form per batch size, latency side by side with the dense model, speedups, file sizes."""
    size, fmt = file_bytes(model)
    out: dict[str, Any] = {"file_bytes": size, "file_format": fmt, "dense_file_bytes": file_bytes(dense)[0]}
    images = torch.cat([test[i][0][None] for i in range(min(len(test), max(spec.measure.batch_sizes)))])
    for b in spec.measure.batch_sizes:
        x = images.repeat((b + len(images) - 1) // len(images), *[1] * (images.dim() - 1))[:b]
        deployed, form = deploy(model, x, spec.method.structure, spec.measure.deploy)
        reference, _ = deploy(dense, x, "weights", "dense")
        (d, d_min), (p, p_min) = latencies([reference, deployed], x, spec.measure.repeats, spec.measure.warmup)
        out.update({f"dense_latency_b{b}_s": d, f"latency_b{b}_s": p, f"measured_speedup_b{b}": d / p,
                    f"dense_latency_b{b}_min_s": d_min, f"latency_b{b}_min_s": p_min, f"deploy_form_b{b}": form})
    largest = max(spec.measure.batch_sizes)
    out.update(measured_speedup=out[f"measured_speedup_b{largest}"], deploy_form=out[f"deploy_form_b{largest}"])
    return out


def unpack_base(state: bytes) -> tuple[dict[str, torch.Tensor], dict[int, dict[str, torch.Tensor]]]:
    """A base's state dict and its kept rewind weights (step → weights) from ``train_base``'s bytes."""
    obj = torch.load(io.BytesIO(state), weights_only=True)
    if set(obj) == {"state_dict", "rewind"}:
        return obj["state_dict"], obj["rewind"]
    return obj, {}


def _sparsities(spec: RunSpec, model: nn.Module) -> list[float]:
    """The sparsity after each pruning round: one for ``oneshot``, ``rounds`` geometric for ``iterative``."""
    from ..api import prunable, sparsity_for_compression
    from ..training.schedules import Iterative

    final = sparsity_for_compression(model, prunable(model), spec.compression)
    if spec.method.schedule == "oneshot":
        return [final]
    return Iterative(sparsity=final, rounds=spec.method.rounds).sparsities()


def _rewind_state(spec: RunSpec, train: Any, rewinds: dict[int, dict]) -> dict[str, torch.Tensor] | None:
    """The weights a rewinding variant resets to: step 0 is the seeded initialization, recreated."""
    from ..training.rewind import snapshot

    r = spec.method.finetune
    if r.variant not in ("rewind", "random-mask"):
        return None
    if r.rewind_step == 0:
        return snapshot(create_model(spec.base.model, train, spec.base.seed))
    if r.rewind_step not in rewinds:
        raise PruneError(f"the base training kept no weights of step {r.rewind_step} (it is shorter); "
                         "choose a smaller finetune.rewind_step")
    return rewinds[r.rewind_step]


def _retrain(spec: RunSpec, model: nn.Module, data: tuple, rewinds: dict[int, dict], rnd: int) -> list[dict]:
    """Retrain after pruning round ``rnd``: fine-tune (``continue``) or replay the base training."""
    from .. import finetune

    (train, val, _), r, seed = data, spec.method.finetune, spec.base.seed
    if not r.replays:
        return _train(model, train, val, spec.finetune, seed)
    options = _options(spec.base.train)
    history = finetune(model, r.variant, train, val, rewind_state=_rewind_state(spec, train, rewinds),
                       rewind_step=r.rewind_step, seed=seed + rnd, restore_best=val is not None, progress=False,
                       **options)
    return history.records


def _prune_gradually(spec: RunSpec, model: nn.Module, train: Any, val: Any, score_data: Any) -> list[dict]:
    """Fine-tune while pruning on Zhu & Gupta's cubic schedule until the last pruning step."""
    from .. import train as fit
    from ..training.schedules import Gradual

    m, g = spec.method, spec.method.gradual or GradualSettings()
    schedule = Gradual(compression=spec.compression, options=dict(structure=m.structure, score=m.score,
                                                                  scope=m.scope, seed=spec.base.seed),
                       start=g.start, every=g.every, n=g.n, initial=g.initial)
    phase = spec.finetune.model_copy(update={"steps": schedule.steps[-1]})
    return fit(model, train, val, seed=spec.base.seed, progress=False, callbacks=[schedule.callback(score_data)],
               **_options(phase)).records


def _prune_and_finetune(spec: RunSpec, model: nn.Module, data: tuple, base_metrics: dict,
                        rewinds: dict[int, dict]) -> tuple[dict, list]:
    """Prune on the method's schedule and retrain; accuracies before and after, and the epoch log."""
    from .. import prune

    (train, val, test), m, seed = data, spec.method, spec.base.seed
    score_data = _score_data(spec, train) if m.score == "gradient" else None
    epochs: list[dict] = []
    if m.schedule == "gradual":
        epochs += _prune_gradually(spec, model, train, val, score_data)
        rounds = 1
    else:
        targets = _sparsities(spec, model)
        rounds = len(targets)
        for i, target in enumerate(targets):
            if i:  # retrain between the rounds of an iterative schedule
                epochs += _retrain(spec, model, data, rewinds, i)
            prune(model, target, structure=m.structure, score=m.score, scope=m.scope, data=score_data, seed=seed)
    metrics = {f"dense_{k}": v for k, v in base_metrics.items() if k.endswith(("top1", "top5", "loss"))}
    metrics.update(_evaluate(model, "pruned_", val, test))
    last = _retrain(spec, model, data, rewinds, rounds)
    metrics.update(_evaluate(model, "finetuned_", val, test))
    metrics["best_epoch"] = History(last).best_epoch or len(last)
    return metrics, epochs + last


def run(spec: RunSpec, base_state: bytes, base_metrics: dict[str, Any], env: Env) -> dict[str, Any]:
    """Prune the base model, fine-tune it, and measure everything; returns metrics and epoch logs."""
    from .. import sparsity, summary

    start = _clock()
    with _threads(env.threads):
        data = load_data(spec.base.dataset, env.data_dir, spec.base.val_fraction)
        dense = create_model(spec.base.model, data[0], spec.base.seed)
        state, rewinds = unpack_base(base_state)
        dense.load_state_dict(state)
        model = copy.deepcopy(dense)
        metrics, epochs = _prune_and_finetune(spec, model, data, base_metrics, rewinds)
        s = summary(model, data[0][0][0][None])
        metrics.update(params=s.params, nonzero_params=s.nonzero_params, achieved_compression=s.compression,
                       sparsity=s.sparsity, prunable_sparsity=sparsity(model), macs=s.macs,
                       nonzero_macs=s.nonzero_macs, theoretical_speedup=s.speedup)
        metrics.update(_measure(spec, dense, model, data[2]))
        metrics.update(environment())
    metrics.update(_elapsed(start))
    return {"metrics": metrics, "epochs": epochs}
