"""Compact storage: masked tensors as bitmask+values or CSR (whichever is smaller), in safetensors.

A 90 %-sparse model saved densely is as big as the dense one. Here every masked tensor is written as
its kept values plus either a packed bitmask (1 bit per entry) or CSR indices (a row pointer and one
column index per kept entry), chosen per tensor by size; the mask itself is what the bitmask or the
indices encode. Everything else is stored dense. The layout is described by JSON in the safetensors
header, so loading reads plain tensors and never unpickles anything.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import MaskMismatchError, StorageFormatError
from ..masks import attach, mask_of, masked_parameters, state_key, unprune

FORMAT = "prunekit.sparse/1"
_SEP = "::"
_HALVED = (torch.float32, torch.float64)


def _index_dtype(limit: int) -> torch.dtype:
    """The narrowest integer dtype safetensors stores that holds values up to ``limit``."""
    if limit <= 255:
        return torch.uint8
    if limit <= 32767:
        return torch.int16
    return torch.int32 if limit <= 2**31 - 1 else torch.int64


def _as_rows(shape: torch.Size) -> tuple[int, int]:
    rows = shape[0] if len(shape) > 1 else 1
    return rows, math.prod(shape) // max(rows, 1)


def encoded_sizes(mask: torch.Tensor, value_bytes: int) -> dict[str, int]:
    """Bytes of each encoding of a masked tensor: ``{"bitmask": ..., "csr": ...}``."""
    nnz = int(mask.sum())
    rows, cols = _as_rows(mask.shape)
    ptr = _index_dtype(nnz).itemsize
    col = _index_dtype(max(cols - 1, 0)).itemsize
    return {
        "bitmask": math.ceil(mask.numel() / 8) + nnz * value_bytes,
        "csr": (rows + 1) * ptr + nnz * (col + value_bytes),
    }


def _encode(name: str, param: torch.Tensor, mask: torch.Tensor, fp16: bool) -> tuple[dict, dict]:
    values = param.detach().cpu()[mask.cpu()]
    if fp16 and values.dtype in _HALVED:
        values = values.half()
    sizes = encoded_sizes(mask, values.element_size())
    kind = min(sizes, key=lambda k: (sizes[k], k != "bitmask"))
    out = {f"{name}{_SEP}values": values}
    flat = mask.detach().cpu().reshape(-1)
    if kind == "bitmask":
        out[f"{name}{_SEP}bits"] = torch.from_numpy(np.packbits(flat.numpy()))
    else:
        rows, cols = _as_rows(mask.shape)
        grid = flat.reshape(rows, cols)
        counts = grid.sum(1)
        crow = torch.zeros(rows + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=crow[1:])
        out[f"{name}{_SEP}crow"] = crow.to(_index_dtype(int(crow[-1])))
        out[f"{name}{_SEP}col"] = grid.nonzero()[:, 1].to(_index_dtype(max(cols - 1, 0)))
    info = {"encoding": kind, "shape": list(param.shape), "dtype": str(param.dtype).removeprefix("torch.")}
    return out, info


def _decode(name: str, info: dict, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    shape = torch.Size(info["shape"])
    dtype = getattr(torch, info["dtype"])
    numel = math.prod(shape)
    if info["encoding"] == "bitmask":
        bits = tensors[f"{name}{_SEP}bits"].numpy()
        flat = torch.from_numpy(np.unpackbits(bits, count=numel).astype(bool))
    else:
        rows, cols = _as_rows(shape)
        crow = tensors[f"{name}{_SEP}crow"].long()
        col = tensors[f"{name}{_SEP}col"].long()
        row = torch.repeat_interleave(torch.arange(rows), crow.diff())
        flat = torch.zeros(numel, dtype=torch.bool)
        flat[row * cols + col] = True
    dense = torch.zeros(numel, dtype=dtype)
    dense[flat] = tensors[f"{name}{_SEP}values"].to(dtype)
    return dense.reshape(shape), flat.reshape(shape)


def save(model: nn.Module, path: str | Path, *, fp16: bool = False) -> dict[str, str]:
    """Write ``model``'s state compactly to a safetensors file; returns the encoding of each masked tensor.

    Masked parameters are stored as bitmask+values or CSR, whichever is smaller; everything else of
    ``state_dict()`` is stored dense. ``fp16=True`` stores fp32/fp64 values as fp16 (half the bytes,
    values rounded to fp16); loading casts them back to the model's dtype.
    """
    from safetensors.torch import save_file

    masked = {q: (module, name) for q, module, name in masked_parameters(model)}
    state = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, dict] = {}
    for q, (module, name) in masked.items():
        mask = mask_of(module, name)
        encoded, layout[q] = _encode(q, getattr(module, name), mask, fp16)
        tensors.update(encoded)
    skip = set(masked) | {state_key(q) for q in masked}
    seen: set[int] = set()
    for key, value in state.items():
        if key in skip:
            continue
        value = value.detach().cpu()
        if fp16 and value.dtype in _HALVED:
            value = value.half()
        # safetensors refuses tensors that share memory (tied weights, views): give each its own copy
        ptr = value.untyped_storage().data_ptr()
        value = value.contiguous().clone() if ptr in seen or not value.is_contiguous() else value
        seen.add(ptr)
        tensors[key] = value
        layout[key] = {"encoding": "dense", "dtype": str(state[key].dtype).removeprefix("torch.")}
    save_file(tensors, str(path), metadata={"format": FORMAT, "layout": json.dumps(layout)})
    return {q: layout[q]["encoding"] for q in masked}


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A file written by :func:`save` as ``(state dict without masks, masks)``, all on the CPU."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise StorageFormatError(
                f"{path} is not a prunekit sparse file (format {meta.get('format')!r}); write it with pk.save"
            )
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    state, masks = {}, {}
    for key, info in json.loads(meta["layout"]).items():
        if info["encoding"] == "dense":
            state[key] = tensors[key].to(getattr(torch, info["dtype"]))
        else:
            state[key], masks[key] = _decode(key, info, tensors)
    return state, masks


def load(path: str | Path, model: nn.Module, *, strict: bool = True) -> nn.Module:
    """Load a file written by :func:`save` into ``model`` (same architecture), masks included.

    The file's masks replace any the model has, and are attached so pruned weights stay zero while
    training. Returns ``model``.
    """
    state, masks = read(path)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = [q for q in masks if q not in params]
    if missing:
        raise MaskMismatchError(f"{path} masks parameters this model does not have: {', '.join(missing[:5])}")
    current = model.state_dict()
    wrong = [k for k, v in state.items() if k in current and current[k].shape != v.shape]
    if wrong:
        k = wrong[0]
        raise StorageFormatError(
            f"{path} does not fit {type(model).__name__}: {k} is {tuple(state[k].shape)} in the file "
            f"but {tuple(current[k].shape)} in the model; load it into the architecture it was saved from"
        )
    unprune(model)
    for q, mask in masks.items():
        mname, _, pname = q.rpartition(".")
        attach(modules[mname], pname, mask)
        state[state_key(q)] = mask
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise StorageFormatError(f"{path} does not fit {type(model).__name__}: {err}") from None
    return model
