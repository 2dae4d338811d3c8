"""The pruned model in the form that really realizes its structure, its latency and its size on disk.

The form is chosen by the structure and labelled by what it really achieved (recorded as
``deployed_as`` with the timings):

* single weights: :func:`prunekit.sparsify` for the batch size served — ``sparse (k/n layers)``
  where sparse kernels time faster on this machine, ``dense (sparse kernels not faster)`` elsewhere;
* N:M: masked and dense, ``2:4 (no CPU kernel; dense)`` — no N:M kernel runs on a CPU;
* units (neurons, channels, heads, any other structure): :func:`prunekit.compact`, labelled
  ``compact`` only when the copy really has fewer parameters, ``dense (compact removed nothing)``
  otherwise, and ``dense (compact failed: …)`` when the model cannot be compacted;
* ``dense``: the masked model with masks removed (zeros stored and multiplied), on request.
"""
from __future__ import annotations

import copy
import io
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import choices
from ..errors import PruneError
from ..masks import masked_parameters, unprune

Form = Callable[[nn.Module, torch.Tensor], tuple[nn.Module, str]]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _dense(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    out = copy.deepcopy(model)
    unprune(out)
    return out.eval(), "dense"


def _sparse(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    from .. import sparsify

    fast = sparsify(model, example)
    chosen = [c for c in fast.sparsify_plan if c.choice != "dense"]
    if chosen:
        return fast, f"sparse ({len(chosen)}/{len(fast.sparsify_plan)} layers)"
    return fast, "dense (sparse kernels not faster)"


def _compact(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    import prunekit

    try:
        small = prunekit.compact(model, example)
    except PruneError as err:
        return _dense(model, example)[0], f"dense (compact failed: {str(err).splitlines()[0][:80]})"
    small = _dense(small, example)[0]
    if _params(small) < _params(model):
        return small, "compact"
    return small, "dense (compact removed nothing)"


FORMS: dict[str, Form] = {"dense": _dense, "sparse": _sparse, "compact": _compact}


def deploy(model: nn.Module, example: torch.Tensor, structure: str, choice: str = "auto") -> tuple[nn.Module, str]:
    """``(deployed copy of model, what it was deployed as)`` for inputs like ``example`` (the batch served)."""
    if choice != "auto":
        if choice not in FORMS:
            raise PruneError(f"unknown deployment form {choice!r}; allowed values: auto, {', '.join(FORMS)}")
        return FORMS[choice](model, example)
    if choices.needs(structure).fixed_sparsity is not None:
        device = "CPU" if example.device.type == "cpu" else example.device.type.upper()
        return _dense(model, example)[0], f"{structure} (no {device} kernel; dense)"
    if choices.is_elementwise(structure):
        return _sparse(model, example)
    return _compact(model, example)


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
