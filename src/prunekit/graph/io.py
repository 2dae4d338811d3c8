"""Save and load compacted models without pickling code: safetensors weights + a JSON manifest.

The manifest holds the compaction plan (kept indices per tensor, changed attributes, rebuilt
attention modules); ``load_compact`` replays it on a fresh model from ``factory`` and loads weights.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import PruneError
from .compact import PLAN_ATTR, apply_plan

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"


def save_compact(model: nn.Module, path: str | Path) -> Path:
    """Write a model returned by ``pk.compact`` to the folder ``path`` (weights + manifest)."""
    from safetensors.torch import save_file

    plan = getattr(model, PLAN_ATTR, None)
    if plan is None:
        raise PruneError("this model was not produced by pk.compact (no compaction plan); compact it first")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS))
    (path / MANIFEST).write_text(json.dumps({"format": "prunekit-compact", "version": 1, "plan": plan}))
    return path


def load_compact(path: str | Path, factory: Callable[[], nn.Module]) -> nn.Module:
    """Rebuild a compacted model: ``factory()`` makes the original architecture, the manifest shrinks it."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / MANIFEST).is_file() or not (path / WEIGHTS).is_file():
        raise PruneError(f"{path} is not a compact-model folder (needs {MANIFEST} and {WEIGHTS})")
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != "prunekit-compact":
        raise PruneError(f"{path / MANIFEST} is not a prunekit compact manifest")
    model = apply_plan(factory(), manifest["plan"])
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except RuntimeError as err:
        raise PruneError(f"the weights in {path} do not fit factory()'s architecture: {err}") from err
    return model


def export_compact(model: nn.Module, example_inputs: Any, path: str | Path) -> Path:
    """Save a self-contained ``torch.export`` program of ``model`` (loaded with ``torch.export.load``)."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    model.eval()
    program = torch.export.export(model, args)
    torch.export.save(program, str(path))
    return Path(path)
