"""Masks of a Keras model, and the constraint that holds pruned weights at zero through ``fit``.

A mask is a boolean NumPy array (True = kept) per pruned variable, keyed by ``variable.path``. It is
kept on the model (``model._prunekit_masks``, set without Keras' attribute tracking, so the model's
weights, config and ``.keras`` file are unchanged) and enforced by a :class:`MaskConstraint` set on
the variable: every Keras optimizer applies variable constraints right after each update, inside the
train step, so momentum, Adam state and weight decay cannot bring a pruned weight back — on every
backend, with no wrapper layers. An existing constraint (e.g. ``MaxNorm``) is kept and applied first.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MaskMismatchError
from .errors import require_keras

_ATTR = "_prunekit_masks"


class MaskConstraint:
    """``w -> inner(w) * mask``: a Keras variable constraint that keeps pruned entries at exactly zero."""

    def __init__(self, mask: np.ndarray, inner: Any = None):
        self.inner = inner
        self.set(mask)

    def set(self, mask: np.ndarray) -> None:
        """Replace the mask (traced train functions must then be rebuilt; see :func:`attach`)."""
        keras = require_keras()
        self.mask = np.asarray(mask, dtype=bool)
        self._tensor = keras.ops.convert_to_tensor(self.mask)

    def __call__(self, w: Any) -> Any:
        ops = require_keras().ops
        if self.inner is not None:
            w = self.inner(w)
        w = ops.convert_to_tensor(w)
        return ops.where(self._tensor, w, ops.zeros_like(w))

    def get_config(self) -> dict:
        return {}


def get(model: Any) -> dict[str, tuple[Any, np.ndarray]]:
    """``{variable.path: (variable, mask)}`` for every masked variable of ``model`` (empty if unpruned)."""
    return model.__dict__.get(_ATTR, {})


def attach(model: Any, variable: Any, mask: np.ndarray) -> None:
    """Mask ``variable`` of ``model``: zero its pruned entries now and keep them zero while training.

    If ``model`` is being trained by a backend that traces its train step (JAX, TensorFlow, or
    ``jit_compile=True``), the step is rebuilt so it sees the new mask.
    """
    keras = require_keras()
    mask = np.asarray(mask, dtype=bool)
    if tuple(mask.shape) != tuple(variable.shape):
        raise MaskMismatchError(f"mask shape {mask.shape} does not fit {variable.path} {tuple(variable.shape)}; "
                                "masks only apply to the architecture they were made for")
    masks = dict(get(model))
    current = variable.constraint
    if isinstance(current, MaskConstraint):
        current.set(mask)
    else:
        variable.constraint = MaskConstraint(mask, current)
    masks[variable.path] = (variable, mask)
    object.__setattr__(model, _ATTR, masks)
    value = keras.ops.convert_to_numpy(variable.value)
    variable.assign(np.where(mask, value, np.zeros_like(value)))
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def apply(model: Any) -> None:
    """Re-zero every masked variable (e.g. after ``set_weights`` or loading weights from a file)."""
    for variable, mask in get(model).values():
        value = require_keras().ops.convert_to_numpy(variable.value)
        variable.assign(np.where(mask, value, np.zeros_like(value)))


def unprune(model: Any) -> None:
    """Drop ``model``'s masks and their constraints; weights keep their current values."""
    for variable, _ in get(model).values():
        if isinstance(variable.constraint, MaskConstraint):
            variable.constraint = variable.constraint.inner
    object.__setattr__(model, _ATTR, {})
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
