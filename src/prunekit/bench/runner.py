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

from .. import choices
from ..training.callbacks import Callback
from ..training.driver import Retraining
from ..errors import PruneError
from . import task_metric
from .config import BaseSpec, RunSpec, TrainSettings
from .deploy import deploy, file_bytes
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
    out = {f"{prefix}test_{k}": v for k, v in _metrics(model, test).items()}
    if val is not None:
        out.update({f"{prefix}val_{k}": v for k, v in _metrics(model, val).items()})
    return out


def _metrics(model: nn.Module, data: Any) -> dict[str, float]:
    """Accuracies and mean loss (on text, per token) with the data's task metric beside them (perplexity)."""
    from .. import evaluate

    out = evaluate(model, data)
    metric = task_metric.for_data(data)
    out[metric.key] = metric.compute(out)
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
        metrics = {**_evaluate(model, "", val, test), task_metric.RECORD: task_metric.for_data(test).key}
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


def _example_inputs(train: Any, n: int = 8) -> torch.Tensor:
    """A few training images: what a traced structure (channels, heads) traces the model on."""
    return torch.stack([train[i][0] for i in range(min(n, len(train)))])


def stored_values(model: nn.Module) -> int:
    """How many weights a deployed model stores: its parameters, plus the weights and biases that
    ``pk.sparsify``'s kernels keep as buffers (``parameters()`` does not list them), sparse ones by value."""
    held = [b for n, b in model.named_buffers() if n.rpartition(".")[2] in ("weight", "bias")]
    values = sum(b.values().numel() if b.layout in (torch.sparse_csr, torch.sparse_coo) else b.numel() for b in held)
    return sum(p.numel() for p in model.parameters()) + values


def _measure(spec: RunSpec, dense: nn.Module, model: nn.Module, test: Any) -> dict[str, Any]:
    """The deployed form per batch size, latency side by side with the dense model and its twin (the
    noise), speedups with their quartiles, file sizes (see :mod:`prunekit.bench.speed`).

    ``deployed_as`` says what the model was really deployed as (see :mod:`prunekit.bench.deploy`);
    the file is the compacted model when compaction shrank it, else ``pk.save`` of the masked model.
    """
    from .speed import measure

    out: dict[str, Any] = {"dense_file_bytes": file_bytes(dense)[0]}
    images = torch.cat([test[i][0][None] for i in range(min(len(test), max(spec.measure.batch_sizes)))])
    for b in spec.measure.batch_sizes:
        x = images.repeat((b + len(images) - 1) // len(images), *[1] * (images.dim() - 1))[:b]
        deployed, form = deploy(model, x, spec.method.structure, spec.measure.deploy)
        reference, _ = deploy(dense, x, "weights", "dense")
        t = measure(reference, deployed, form, x, spec.measure.repeats, spec.measure.warmup)
        out.update({f"dense_latency_b{b}_s": t["dense_s"], f"latency_b{b}_s": t["deployed_s"],
                    f"measured_speedup_b{b}": t["speedup"], f"measured_speedup_q1_b{b}": t["speedup_q1"],
                    f"measured_speedup_q3_b{b}": t["speedup_q3"], f"noise_ratio_b{b}": t["noise"],
                    f"speedup_by_construction_b{b}": t["by_construction"],
                    f"dense_latency_b{b}_min_s": t["dense_min_s"], f"latency_b{b}_min_s": t["deployed_min_s"],
                    f"deploy_form_b{b}": form})
    largest = max(spec.measure.batch_sizes)
    form = out[f"deploy_form_b{largest}"]
    out.update({k: out[f"{k}_b{largest}"] for k in ("measured_speedup", "measured_speedup_q1", "measured_speedup_q3",
                                                     "noise_ratio", "speedup_by_construction")})
    out.update(deploy_form=form, deployed_as=form, deployed_params=stored_values(deployed))
    size, fmt = file_bytes(deployed if form == "compact" else model)
    out.update(file_bytes=size, file_format=fmt)
    return out


def unpack_base(state: bytes) -> tuple[dict[str, torch.Tensor], dict[int, dict[str, torch.Tensor]]]:
    """A base's state dict and its kept rewind weights (step → weights) from ``train_base``'s bytes."""
    obj = torch.load(io.BytesIO(state), weights_only=True)
    if set(obj) == {"state_dict", "rewind"}:
        return obj["state_dict"], obj["rewind"]
    return obj, {}


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


def _retraining(spec: RunSpec, train: Any, val: Any, rewinds: dict[int, dict]) -> Retraining:
    """The method's retraining: fine-tune (``continue``) with the run's settings, or replay the base training."""
    r, common = spec.method.finetune, {"restore_best": val is not None, "progress": False}
    return Retraining(r.variant, {**_options(spec.finetune), **common}, {**_options(spec.base.train), **common},
                      _rewind_state(spec, train, rewinds), r.rewind_step)


def _schedule(spec: RunSpec, model: nn.Module, inputs: dict) -> Any:
    """The method's schedule at the run's target, with its ``pk.prune`` options."""
    from ..training import schedules
    from ..training.driver import target_sparsity

    m, options = spec.method, spec.method.prune_options(spec.base.seed, spec.base.model)
    g = m.gradual or GradualSettings()
    if m.target == "macs_reduction":
        target: dict[str, Any] = {"macs_reduction": spec.compression}
    elif m.target == "prunable_compression":
        target = {"sparsity": 1 - 1 / spec.compression}
    else:
        target = {"sparsity": target_sparsity(model, options, inputs, spec.compression)}
    return schedules.make(m.schedule, **target, rounds=m.rounds, start=g.start, every=g.every, n=g.n,
                          initial=g.initial, **options)


def _prune_and_finetune(spec: RunSpec, model: nn.Module, data: tuple, base_metrics: dict,
                        rewinds: dict[int, dict]) -> tuple[dict, list]:
    """Prune on the method's schedule and retrain (the one driver); accuracies before and after, epoch log."""
    from ..training.driver import prune_and_finetune, prune_inputs

    (train, val, test), m = data, spec.method
    need = choices.needs(m.structure, m.score)
    score_data = _score_data(spec, train) if need.data else None
    example = _example_inputs(train) if need.example_inputs else None
    schedule = _schedule(spec, model, prune_inputs(m.prune_options(spec.base.seed, spec.base.model), score_data, example))
    metric = task_metric.for_data(test)
    metrics = {f"dense_{k}": v for k, v in base_metrics.items() if k.endswith(("top1", "top5", "loss", metric.key))}
    metrics[task_metric.RECORD] = metric.key

    def pruned(rnd: int, last: bool, pruned_model: nn.Module) -> None:
        if last:  # accuracy right after the last pruning, before its retraining
            metrics.update(_evaluate(pruned_model, "pruned_", val, test))

    result = prune_and_finetune(model, schedule, train, val, retraining=_retraining(spec, train, val, rewinds),
                                data=score_data, example_inputs=example, seed=spec.base.seed, on_pruned=pruned)
    metrics.update(_evaluate(model, "finetuned_", val, test))
    metrics["best_epoch"] = result.history.best_epoch or len(result.history)
    metrics["rounds"] = len(result.rounds)
    return metrics, result.epochs


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
