"""The pruned model "as it would be deployed", its measured latency and its size on disk.

Deployment forms are tried in order of preference for the pruning structure; the first one
available in this prunekit build is used, and its name is recorded with the timings:

* ``sparse`` (single weights): :func:`prunekit.sparsify` for the batch size served — sparse kernels
  where they time faster on this machine, dense elsewhere (recorded as ``dense`` if none is faster);
* ``compact`` (neurons/channels): :func:`prunekit.compact`, a physically smaller dense model;
* ``dense``: the masked model with masks removed (zeros stored and multiplied), always available.
"""
from __future__ import annotations

import copy
import io
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import PruneError
from ..masks import masked_parameters, unprune
from ..metrics import time_interleaved

Form = Callable[[nn.Module, torch.Tensor], tuple[nn.Module, str]]


def _dense(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    out = copy.deepcopy(model)
    unprune(out)
    return out.eval(), "dense"


def _sparse(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    from .. import sparsify

    fast = sparsify(model, example)
    chosen = [c for c in fast.sparsify_plan if c.choice != "dense"]
    return fast, f"sparse ({len(chosen)}/{len(fast.sparsify_plan)} layers)" if chosen else "dense"


def _compact(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    import prunekit

    return _dense(prunekit.compact(model, example), example)[0], "compact"


_PREFERENCE: dict[str, tuple[str, ...]] = {"weights": ("sparse", "dense"), "neurons": ("compact", "dense")}


def _available() -> dict[str, Form]:
    import prunekit

    forms: dict[str, Form] = {"dense": _dense}
    if hasattr(prunekit, "sparsify"):
        forms["sparse"] = _sparse
    if hasattr(prunekit, "compact"):
        forms["compact"] = _compact
    return forms


def deploy(model: nn.Module, example: torch.Tensor, structure: str, choice: str = "auto") -> tuple[nn.Module, str]:
    """``(deployed copy of model, form name)`` for inputs like ``example`` (the served batch size)."""
    forms = _available()
    order = _PREFERENCE.get(structure, ("dense",)) if choice == "auto" else (choice,)
    name = next((n for n in order if n in forms), None)
    if name is None:
        raise PruneError(f"deployment form {choice!r} is not available in this build; available: {', '.join(forms)}")
    return forms[name](model, example)


def file_bytes(model: nn.Module) -> tuple[int, str]:
    """Bytes and format of the file that ships the model: prunekit's compact format (bitmask or CSR
    per pruned tensor) for a masked model when available, else ``torch.save(state_dict())``."""
    import prunekit

    if hasattr(prunekit, "save") and any(True for _ in masked_parameters(model)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.safetensors"
            prunekit.save(model, path)
            return path.stat().st_size, "compact"
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell(), "dense"


@torch.inference_mode()
def latencies(models: list[nn.Module], x: torch.Tensor, repeats: int, warmup: int) -> list[tuple[float, float]]:
    """(median, min) seconds per forward pass of each model on ``x``, timed interleaved so that load
    from other processes hits every model alike."""
    for m in models:
        m.eval()
    t = time_interleaved({str(i): (lambda m=m: m(x)) for i, m in enumerate(models)}, repeats, warmup)
    return [(t.median[str(i)], t.min[str(i)]) for i in range(len(models))]
