"""Array-level pruning for any framework: NumPy arrays, torch tensors, or lists of them.

For Keras users::

    weights = model.get_weights()
    kernels = [w for w in weights if w.ndim > 1]          # leave biases dense
    pruned, masks = pk.functional.weight_pruning(kernels, 0.9)   # one global ranking
    it = iter(pruned)
    model.set_weights([next(it) if w.ndim > 1 else w for w in weights])

Counts are exact: ``round(k × N)`` entries (or units) are zeroed; ties go to the lower index.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .errors import InvalidArgumentError, InvalidSparsityError
from .selection import count, keep_lowest_dropped
from .structures import reduce_units


def _check(k: float) -> None:
    if not isinstance(k, (int, float)) or not 0 <= k < 1:
        raise InvalidSparsityError(f"k is the fraction to prune and must be in [0, 1) (got {k!r})")


def _as_torch(w: Any) -> torch.Tensor:
    return w.detach() if isinstance(w, torch.Tensor) else torch.from_numpy(np.asarray(w))


def _like(x: torch.Tensor, original: Any) -> Any:
    return x if isinstance(original, torch.Tensor) else x.numpy()


def _prune(arrays: Sequence[Any], k: float, axis: int | None) -> tuple[list[Any], list[Any]]:
    _check(k)
    tensors = [_as_torch(w) for w in arrays]
    for i, t in enumerate(tensors):
        if axis is not None and not -t.dim() <= axis < max(t.dim(), 1):
            raise InvalidArgumentError(f"axis={axis} does not exist in array {i} of shape {tuple(t.shape)}; "
                                       f"pass an axis in {-t.dim()}..{t.dim() - 1}")
    if axis is None:
        units = [t.abs().reshape(-1).double() for t in tensors]
    else:
        units = [reduce_units(t.movedim(axis, 0).reshape(t.shape[axis], -1).double(), "l2") for t in tensors]
    sizes = [u.numel() for u in units]
    keeps = keep_lowest_dropped([lambda u=u: [u] for u in units], sizes, count(k, sum(sizes)))
    pruned, masks = [], []
    for t, keep, original in zip(tensors, keeps, arrays):
        if axis is None:
            mask = keep.reshape(t.shape)
        else:
            shape = [1] * t.dim()
            shape[axis] = -1
            mask = keep.view(shape).expand(t.shape).clone()
        pruned.append(_like(t * mask.to(t.dtype), original))
        masks.append(_like(mask, original))
    return pruned, masks


def weight_pruning(w: Any, k: float) -> tuple[Any, Any]:
    """Zero the fraction ``k`` of entries with the smallest |w|; returns ``(pruned, mask)``.

    ``w`` is an array/tensor, or a list of them ranked together (global scope), in which case
    lists come back.
    """
    if isinstance(w, (list, tuple)):
        return _prune(w, k, None)
    pruned, masks = _prune([w], k, None)
    return pruned[0], masks[0]


def unit_pruning(w: Any, k: float, axis: int = -1) -> tuple[Any, Any]:
    """Zero the fraction ``k`` of units with the smallest L2 norm; returns ``(pruned, mask)``.

    ``axis`` indexes the units: -1 for a Keras ``Dense`` kernel ``(in, out)``, 0 for a torch
    ``Linear`` weight ``(out, in)``. A list of arrays is ranked together (global scope).
    """
    if isinstance(w, (list, tuple)):
        return _prune(w, k, axis)
    pruned, masks = _prune([w], k, axis)
    return pruned[0], masks[0]
