"""The pruned model "as it would be deployed", its measured latency and its size on disk.

Deployment forms are tried in order of preference for the pruning structure; the first one
available in this prunekit build is used, and its name is recorded with the timings. ``dense`` (the
masked model with masks removed: zeros stored and multiplied) is always available, so a measured
speedup near 1 for unstructured sparsity is the honest answer until a sparse form is registered.
"""
from __future__ import annotations

import copy
import io
import statistics
import time
from typing import Callable

import torch
from torch import nn

from ..masks import unprune

Form = Callable[[nn.Module, torch.Tensor], nn.Module]


def _dense(model: nn.Module, example: torch.Tensor) -> nn.Module:
    out = copy.deepcopy(model)
    unprune(out)
    return out.eval()


def _compact(model: nn.Module, example: torch.Tensor) -> nn.Module:
    import prunekit

    return _dense(prunekit.compact(model, example), example)


FORMS: dict[str, Form] = {"dense": _dense}
_PREFERENCE: dict[str, tuple[str, ...]] = {"neurons": ("compact", "dense")}


def _available() -> dict[str, Form]:
    import prunekit

    return {**FORMS, **({"compact": _compact} if hasattr(prunekit, "compact") else {})}


def deploy(model: nn.Module, example: torch.Tensor, structure: str, choice: str = "auto") -> tuple[nn.Module, str]:
    """``(deployed copy of model, form name)``; ``choice="auto"`` picks the best available form."""
    forms = _available()
    order = _PREFERENCE.get(structure, ("dense",)) if choice == "auto" else (choice,)
    name = next(n for n in order if n in forms)
    return forms[name](model, example), name


def file_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``: what shipping the weights costs."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


@torch.inference_mode()
def latencies(models: list[nn.Module], x: torch.Tensor, repeats: int, warmup: int) -> list[tuple[float, float]]:
    """(median, min) seconds per forward pass of each model on ``x``, timed interleaved so that load
    from other processes hits every model alike."""
    for m in models:
        m.eval()
        for _ in range(warmup):
            m(x)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for i, m in enumerate(models):
            t0 = time.perf_counter()
            m(x)
            times[i].append(time.perf_counter() - t0)
    return [(statistics.median(t), min(t)) for t in times]
