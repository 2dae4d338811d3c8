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

from .. import safefiles
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


def encode(name: str, param: torch.Tensor, mask: torch.Tensor, fp16: bool) -> tuple[dict, dict]:
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


def _layout_error(path: Path, key: str, what: str) -> StorageFormatError:
    return StorageFormatError(f"{path}: entry {key!r} {what}; the file is damaged — write it again with pk.save")


def _dtype(path: Path, key: str, info: dict) -> torch.dtype:
    dtype = getattr(torch, str(info.get("dtype")), None)
    if not isinstance(dtype, torch.dtype):
        raise _layout_error(path, key, f"has an unknown dtype {info.get('dtype')!r}")
    return dtype


def _tensor(path: Path, tensors: dict, key: str, integer: bool = False, vector: bool = True) -> torch.Tensor:
    t = tensors.get(key)
    if t is None:
        raise _layout_error(path, key, "is missing")
    if not vector:
        return t
    if t.dim() != 1 or (integer and (t.dtype.is_floating_point or t.dtype == torch.bool)):
        raise _layout_error(path, key, f"must be a 1-D {'integer ' if integer else ''}tensor (is {t.dtype} "
                                       f"{tuple(t.shape)})")
    return t


def _mask_bits(path: Path, name: str, shape: torch.Size, tensors: dict) -> torch.Tensor:
    """The flat boolean mask a bitmask or CSR entry encodes, after checking every count and index."""
    numel = math.prod(shape)
    if f"{name}{_SEP}bits" in tensors:
        bits = _tensor(path, tensors, f"{name}{_SEP}bits")
        if bits.dtype != torch.uint8 or len(bits) != math.ceil(numel / 8):
            raise _layout_error(path, f"{name}{_SEP}bits", f"must hold {math.ceil(numel / 8)} uint8 bytes "
                                                          f"for shape {list(shape)}")
        return torch.from_numpy(np.unpackbits(bits.numpy(), count=numel).astype(bool))
    rows, cols = _as_rows(shape)
    crow = _tensor(path, tensors, f"{name}{_SEP}crow", integer=True).long()
    col = _tensor(path, tensors, f"{name}{_SEP}col", integer=True).long()
    if len(crow) != rows + 1 or crow[0] != 0 or bool((crow.diff() < 0).any()) or crow[-1] != len(col):
        raise _layout_error(path, f"{name}{_SEP}crow", f"is not a row pointer of {rows} rows over {len(col)} "
                                                      "column indices")
    if len(col) and (col.min() < 0 or col.max() >= cols):
        raise _layout_error(path, f"{name}{_SEP}col", f"has a column index outside 0..{cols - 1}")
    row = torch.repeat_interleave(torch.arange(rows), crow.diff())
    flat_index = row * cols + col
    if bool((flat_index.diff() <= 0).any()):
        raise _layout_error(path, f"{name}{_SEP}col", "repeats or unorders the columns of a row")
    flat = torch.zeros(numel, dtype=torch.bool)
    flat[flat_index] = True
    return flat


def decode(path: Path, name: str, info: dict, tensors: dict) -> tuple[torch.Tensor, torch.Tensor]:
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _layout_error(path, name, f"has an invalid shape {shape!r}")
    shape, dtype = torch.Size(shape), _dtype(path, name, info)
    flat = _mask_bits(path, name, shape, tensors)
    values = _tensor(path, tensors, f"{name}{_SEP}values")
    if len(values) != int(flat.sum()):
        raise _layout_error(path, f"{name}{_SEP}values", f"holds {len(values)} values but the mask keeps "
                                                        f"{int(flat.sum())}")
    dense = torch.zeros(math.prod(shape), dtype=dtype)
    dense[flat] = values.to(dtype)
    return dense.reshape(shape), flat.reshape(shape)


def save(model: nn.Module, path: str | Path, *, fp16: bool = False) -> dict[str, str]:
    """Write ``model``'s state compactly to a safetensors file; returns the encoding of each masked tensor.

    Masked parameters are stored as bitmask+values or CSR, whichever is smaller; everything else of
    ``state_dict()`` is stored dense. ``fp16=True`` stores fp32/fp64 values as fp16 (half the bytes,
    values rounded to fp16); loading casts them back to the model's dtype.
    """
    masked = {q: (module, name) for q, module, name in masked_parameters(model)}
    state = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, dict] = {}
    for q, (module, name) in masked.items():
        mask = mask_of(module, name)
        encoded, layout[q] = encode(q, getattr(module, name), mask, fp16)
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
    safefiles.write(path, tensors, {"format": FORMAT, "layout": json.dumps(layout)})
    return {q: layout[q]["encoding"] for q in masked}


def _layout(path: Path, meta: dict) -> dict[str, dict]:
    if meta.get("format") != FORMAT:
        raise StorageFormatError(
            f"{path} is not a prunekit sparse file (format {meta.get('format')!r}); write it with pk.save"
        )
    try:
        layout = json.loads(meta.get("layout", ""))
    except ValueError:
        layout = None
    if not isinstance(layout, dict) or not all(isinstance(v, dict) for v in layout.values()):
        raise StorageFormatError(f"{path}: its layout is not a JSON mapping of entries; write it again with pk.save")
    return layout


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A file written by :func:`save` as ``(state dict without masks, masks)``, all on the CPU.

    Every field the file claims (encodings, dtypes, shapes, counts, index ranges) is checked before
    a tensor is built; a damaged or foreign file raises :class:`StorageFormatError` naming it.
    """
    tensors, meta = safefiles.read(path, StorageFormatError, "prunekit sparse file (pk.save)")
    path = Path(path)
    state, masks = {}, {}
    for key, info in _layout(path, meta).items():
        encoding = info.get("encoding")
        if encoding == "dense":
            state[key] = _tensor(path, tensors, key, vector=False).to(_dtype(path, key, info))
        elif encoding in ("bitmask", "csr"):
            state[key], masks[key] = decode(path, key, info, tensors)
        else:
            raise _layout_error(path, key, f"has an unknown encoding {encoding!r}")
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
    if strict:
        expected = set(current) - {state_key(q) for q in masks} - {state_key(q) for q, *_ in masked_parameters(model)}
        stray, absent = sorted(set(state) - expected), sorted(expected - set(state))
        if stray or absent:
            raise StorageFormatError(
                f"{path} does not fit {type(model).__name__}: keys only in the file {stray[:5]}, only in the "
                f"model {absent[:5]}; load it into the architecture it was saved from (or pass strict=False)"
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
