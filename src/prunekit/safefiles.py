"""Checked safetensors files: every file prunekit writes carries a digest of its tensors and metadata.

A safetensors file has no checksum, so a flipped byte in a weight loads as a different weight without
a word. Files written by :func:`write` hold the sha256 of every tensor (name, dtype, shape, bytes)
and of their metadata; :func:`read` recomputes it and raises the caller's error class, naming the
file, when anything differs, and wraps every reader failure (truncated, empty, garbage, a folder, a
missing path) the same way. Nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

import torch

from .errors import PruneError

DIGEST = "sha256"


def existing_file(path: str | Path, error: type[PruneError], what: str) -> Path:
    """``path`` as a Path if it is a readable file; otherwise ``error`` saying what is there instead."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a folder, not a {what}; pass the file itself")
    if not path.exists():
        raise error(f"{path} does not exist; pass the path of a {what}")
    if not os.access(path, os.R_OK):
        raise error(f"{path} is not readable; check its permissions")
    return path


def digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """sha256 over the metadata (except the digest) and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(k for k in metadata if k != DIGEST):
        h.update(f"meta\0{key}\0{metadata[key]}\0".encode())
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"tensor\0{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write ``tensors`` to a safetensors file whose metadata holds ``metadata`` and their digest."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**metadata, DIGEST: digest(tensors, metadata)}
    save_file(tensors, str(path), metadata=meta)


def read(path: str | Path, error: type[PruneError], what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a file written by :func:`write`, checked against its digest."""
    from safetensors import safe_open

    path = existing_file(path, error, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # noqa: BLE001 - every reader failure means a damaged or foreign file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{path} is not a readable {what} ({reason}); it is truncated, damaged or another "
                    "format — write it again") from None
    if DIGEST not in metadata:
        raise error(f"{path} carries no {DIGEST} digest, so it is not a {what} written by this prunekit "
                    "(another tool, or a version before 0.1.0's checked files); save it again with prunekit")
    if digest(tensors, metadata) != metadata[DIGEST]:
        raise error(f"{path} is corrupt: its contents do not match the {DIGEST} digest stored in it; "
                    "write it again")
    return tensors, metadata
