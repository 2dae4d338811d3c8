"""How important a weight or unit of a Keras kernel is, computed with ``keras.ops`` on any backend.

A score never thresholds: it returns one number per weight (``elementwise``) or per unit (``units``);
the scope in :mod:`prunekit.keras.prune` picks the exact count to drop. Unit scores of "magnitude"
are the L2 norm of the unit's kernel entries (as ``prunekit.functional.unit_pruning``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import UnknownNameError
from .errors import require_keras


def _magnitude(w: Any, unit_ndim: int | None, seed: int) -> Any:
    ops = require_keras().ops
    if unit_ndim is None:
        return ops.abs(w)
    lead = tuple(range(len(w.shape) - unit_ndim))
    return ops.sqrt(ops.sum(ops.square(w), axis=lead)) if lead else ops.abs(w)


def _random(w: Any, unit_ndim: int | None, seed: int) -> Any:
    keras = require_keras()
    shape = tuple(w.shape) if unit_ndim is None else tuple(w.shape[len(w.shape) - unit_ndim:])
    return keras.random.uniform(shape, seed=seed)


SCORES: dict[str, Callable[[Any, int | None, int], Any]] = {"magnitude": _magnitude, "random": _random}


def score(name: str, w: Any, unit_ndim: int | None, seed: int) -> np.ndarray:
    """Scores of kernel ``w`` as float64 NumPy: per weight (``unit_ndim`` None) or per unit (flattened)."""
    try:
        fn = SCORES[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown score {name!r}; valid: {', '.join(SCORES)}") from None
    values = require_keras().ops.convert_to_numpy(fn(w, unit_ndim, seed)).astype(np.float64)
    return values if unit_ndim is None else values.reshape(-1)
