"""A user's own data: a ``module:function`` returning ``(train, val, test)``, or a folder of tensors.

A folder holds ``train`` and ``test`` (and optionally ``val``) as ``.npz`` (arrays ``x`` and ``y``)
or ``.pt`` files (a dict with tensors ``x`` and ``y``, read with ``torch.load(weights_only=True)``:
nothing is unpickled). ``x`` is ``(N, C, H, W)`` or ``(N, features)`` float, ``y`` integer labels.
A function may return datasets of ``(x, y)`` pairs or ``(x, y)`` tensor pairs per split
(``val`` may be None: then a seeded fraction of ``train`` is held out).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import userdefs
from ..errors import DataFileError
from .base import ArrayDataset, split

SPLITS = ("train", "val", "test")


def is_custom(name: str) -> bool:
    """Whether a dataset name is a user's (``module:function`` or a folder), not a registered one."""
    return userdefs.is_reference(name) or Path(name).is_dir()


def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            if not {"x", "y"} <= set(f.files):
                raise DataFileError(f"{path} holds {sorted(f.files)}; save arrays named x and y (np.savez(path, x=..., y=...))")
            return torch.from_numpy(f["x"]), torch.from_numpy(f["y"])
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - an unreadable or unsafe file is the user's to fix
        raise DataFileError(f"cannot read {path} as tensors ({type(err).__name__}); save a dict of tensors "
                            "{'x': ..., 'y': ...} with torch.save") from None
    if not isinstance(obj, dict) or not {"x", "y"} <= set(obj):
        raise DataFileError(f"{path} must hold a dict with tensors 'x' and 'y'")
    return obj["x"], obj["y"]


def _dataset(x: Any, y: Any, where: str) -> ArrayDataset:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if not x.is_floating_point() or y.is_floating_point():
        raise DataFileError(f"{where}: x must be float and y integer labels (got {x.dtype}, {y.dtype})")
    return ArrayDataset(x.float(), y.long())


def _as_dataset(part: Any, where: str) -> Any:
    if isinstance(part, (tuple, list)) and len(part) == 2 and all(hasattr(p, "shape") for p in part):
        return _dataset(*part, where)
    return part


def _folder(root: Path) -> dict[str, Any]:
    out = {}
    for name in SPLITS:
        found = [p for p in (root / f"{name}.npz", root / f"{name}.pt") if p.is_file()]
        if found:
            out[name] = _dataset(*_read(found[0]), str(found[0]))
        elif name != "val":
            raise DataFileError(f"{root} has no {name}.npz or {name}.pt; a data folder holds train and test "
                                "(and optionally val) as .npz (x, y) or .pt ({'x', 'y'}) files")
    return out


def load_custom(name: str, val_fraction: float, seed: int) -> tuple[Any, Any, Any]:
    """``(train, val, test)`` of a user's dataset; without a ``val`` split one is carved from train."""
    if userdefs.is_reference(name):
        parts = userdefs.load(name, "dataset function")()
        if not isinstance(parts, (tuple, list)) or len(parts) != 3:
            raise DataFileError(f"{name} must return (train, val, test); val may be None")
        found = {k: _as_dataset(p, f"{name} {k}") for k, p in zip(SPLITS, parts) if p is not None}
    else:
        found = _folder(Path(name))
    train, val, test = (found.get(k) for k in SPLITS)
    if val is None and val_fraction > 0 and isinstance(train, ArrayDataset):
        train, val = split(train, val_fraction, seed)
    return train, val, test
