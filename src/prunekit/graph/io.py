"""Save and load compacted models without pickling code: safetensors weights + a JSON manifest.

The manifest holds the compaction plan (kept indices per tensor, changed attributes, rebuilt
attention modules); ``load_compact`` replays it on a fresh model from ``factory`` and loads weights.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import safefiles
from ..errors import InvalidArgumentError, PruneError, StorageFormatError
from .compact import PLAN_ATTR, _resolve, apply_plan
from .hf import BASE_ATTR, base_model

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
FORMAT = "prunekit-compact"


def save_compact(model: nn.Module, path: str | Path) -> Path:
    """Write a model returned by ``pk.compact`` to the folder ``path`` (weights + manifest)."""
    plan = getattr(model, PLAN_ATTR, None)
    if plan is None:
        raise PruneError("this model was not produced by pk.compact (no compaction plan); compact it first")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageFormatError(f"{path} is a file; save_compact writes a folder, so pass a folder path")
    path.mkdir(parents=True, exist_ok=True)
    tensors, ties = _shared_once(model.state_dict())
    manifest = {"format": FORMAT, "version": 1, "plan": plan, "ties": ties}
    if getattr(model, BASE_ATTR, None) is not None:  # lets load_compact rebuild it without a factory
        manifest["transformers"] = getattr(model, BASE_ATTR)
    text = json.dumps(manifest)
    (path / MANIFEST).write_text(text)
    meta = {"format": FORMAT, "manifest_sha256": hashlib.sha256(text.encode()).hexdigest()}
    safefiles.write(path / WEIGHTS, tensors, meta)
    return path


def _shared_once(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors with each tied one (e.g. input and output embeddings) stored once, and ``{alias: stored name}``.

    A tensor that only overlaps another's memory without being the same view is stored as a copy.
    """
    kept: dict[tuple, str] = {}
    spans: list[tuple[int, int]] = []
    tensors, ties = {}, {}
    for name, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            tensors[name] = t
            continue
        start = t.untyped_storage().data_ptr() + t.storage_offset() * t.element_size()
        key = (start, tuple(t.shape), tuple(t.stride()), t.dtype)
        if key in kept:
            ties[name] = kept[key]
            continue
        end = start + t.element_size() * (1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride())))
        overlaps = any(start < e and s < end for s, e in spans)
        kept[key] = name
        spans.append((start, end))
        tensors[name] = t.clone() if overlaps else t
    return tensors, ties


def _tie(model: nn.Module, ties: dict[str, str]) -> None:
    """Make each alias name hold the very tensor its stored name holds, as it did when saved."""
    for alias, name in ties.items():
        owner, leaf = _resolve(model, alias)
        table = owner._parameters if leaf in owner._parameters else owner._buffers
        table[leaf] = getattr(*_resolve(model, name))


def _bad(where: Path, what: str) -> StorageFormatError:
    return StorageFormatError(f"{where}: {what}; save the model again with save_compact")


def _read_manifest(path: Path) -> tuple[dict, bytes]:
    raw = safefiles.existing_file(path, StorageFormatError, "compact-model manifest").read_bytes()
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise _bad(path, f"not JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _bad(path, "not a prunekit compact manifest (no \"format\": \"prunekit-compact\")")
    plan = manifest.get("plan")
    if not isinstance(plan, dict) or not all(isinstance(plan.get(k), dict) for k in ("params", "attrs", "mha")):
        raise _bad(path, "its plan must be a mapping with the mappings params, attrs and mha")
    ties = manifest.get("ties", {})
    if not isinstance(ties, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ties.items()):
        raise _bad(path, "its ties must map tensor names to tensor names")
    base = manifest.get("transformers")
    if base is not None and not (isinstance(base, dict) and isinstance(base.get("class"), str)
                                 and isinstance(base.get("config"), dict)):
        raise _bad(path, "its transformers entry must give a model class name and a config mapping")
    return plan, ties, base, raw


def _check_plan(where: Path, plan: dict, model: nn.Module) -> None:
    """Every name in ``plan`` exists in ``model``, every kept index is in range, sorted and unique."""
    tensors = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers())}
    modules = dict(model.named_modules())
    for qname, dims in plan["params"].items():
        t = tensors.get(qname)
        if t is None or not isinstance(dims, dict):
            raise _bad(where, f"keeps indices of {qname!r}, which factory()'s model does not have")
        for d, idx in dims.items():
            if not (d.isdigit() and int(d) < t.dim()):
                raise _bad(where, f"{qname!r} has no dimension {d!r} (it is {tuple(t.shape)})")
            size = t.shape[int(d)]
            ok = isinstance(idx, list) and idx and all(isinstance(i, int) and 0 <= i < size for i in idx)
            if not ok or any(a >= b for a, b in zip(idx, idx[1:])):
                raise _bad(where, f"{qname!r} dimension {d} must keep sorted, unique indices in 0..{size - 1}")
    for qname, value in plan["attrs"].items():
        mname, _, attr = qname.rpartition(".")
        if mname not in modules or not hasattr(modules[mname], attr) or not isinstance(value, int) or value < 1:
            raise _bad(where, f"sets {qname!r} to {value!r}, but factory()'s model has no such attribute "
                              "or the value is not a positive integer")
    for name, spec in plan["mha"].items():
        good = isinstance(spec, dict) and all(isinstance(spec.get(k), int) and spec[k] > 0
                                              for k in ("num_heads", "head_dim"))
        if not hasattr(modules.get(name), "embed_dim") or not good:
            raise _bad(where, f"rebuilds attention {name!r}, which is not an attention module of factory()'s "
                              "model, or gives no positive num_heads/head_dim")


def load_compact(path: str | Path, factory: Callable[[], nn.Module] | None = None) -> nn.Module:
    """Rebuild a compacted model: ``factory()`` makes the original architecture, the manifest shrinks it.

    A ``transformers`` model needs no factory: the manifest names its class and original config.

    The manifest is checked against ``factory()``'s model and the weights against their digest and
    the manifest's, so a damaged or foreign folder raises :class:`StorageFormatError` naming the file.
    """
    path = Path(path)
    if not (path / MANIFEST).is_file() or not (path / WEIGHTS).is_file():
        raise StorageFormatError(f"{path} is not a compact-model folder (needs {MANIFEST} and {WEIGHTS})")
    plan, ties, base, raw = _read_manifest(path / MANIFEST)
    tensors, meta = safefiles.read(path / WEIGHTS, StorageFormatError, "compact-model weights file")
    if meta.get("format") != FORMAT or meta.get("manifest_sha256") != hashlib.sha256(raw).hexdigest():
        raise _bad(path / WEIGHTS, f"it does not belong to {path / MANIFEST} (the manifest digest differs)")
    if factory is None and base is None:
        raise InvalidArgumentError(f"{path} holds no transformers architecture: pass factory=, a function that "
                                   "builds the original (uncompacted) model")
    model = factory() if factory is not None else base_model(base)
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"factory() must return an nn.Module, got {type(model).__name__}")
    _check_plan(path / MANIFEST, plan, model)
    _check_ties(path / MANIFEST, ties, model, tensors)
    model = apply_plan(model, plan)
    try:
        model.load_state_dict({**tensors, **{alias: tensors[name] for alias, name in ties.items()}})
    except RuntimeError as err:
        raise StorageFormatError(f"the weights in {path} do not fit factory()'s architecture: {err}") from None
    _tie(model, ties)
    return model


def _check_ties(where: Path, ties: dict[str, str], model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Each tie names a stored tensor and a tensor of ``model`` of the same kind (parameter or buffer)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers(remove_duplicate=False))
    for alias, name in ties.items():
        same_kind = (alias in params and name in params) or (alias in buffers and name in buffers)
        if name not in tensors or not same_kind:
            raise _bad(where, f"ties {alias!r} to {name!r}, but the weights file or factory()'s model lacks one "
                              "of them")


def export_compact(model: nn.Module, example_inputs: Any, path: str | Path) -> Path:
    """Save a self-contained ``torch.export`` program of ``model`` (loaded with ``torch.export.load``)."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    model.eval()
    program = torch.export.export(model, args)
    torch.export.save(program, str(path))
    return Path(path)
