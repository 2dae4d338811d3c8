"""Keras 3 pruning: prune, hold masks through ``fit``, compact, save small, summarize.

Optional extra ``prunekit[keras]``; ``import prunekit`` never imports this package or Keras. Set the
backend (``KERAS_BACKEND=torch``, ``jax`` or ``tensorflow``) before importing Keras as usual::

    import prunekit.keras as pkk

    pkk.prune(model, sparsity=0.9)                       # global magnitude, single weights, exact count
    model.fit(x, y, epochs=2)                            # pruned weights stay exactly zero
    pkk.prune(model, sparsity=0.5, structure="units")    # whole Dense units (output layer kept)
    small = pkk.compact(model)                           # a smaller Keras model, same outputs
    pkk.save(small, "model.pk.safetensors"); pkk.load("model.pk.safetensors")
    print(pkk.summary(small, baseline=model))
"""
from .errors import KerasMissingError, UnbuiltModelError, require_keras

require_keras()

from . import schedules  # noqa: E402
from .callback import PruningCallback  # noqa: E402
from .compact import compact  # noqa: E402
from .masks import MaskConstraint  # noqa: E402
from .masks import apply as apply_masks  # noqa: E402
from .masks import get as _get_masks  # noqa: E402
from .masks import unprune  # noqa: E402
from .prune import prune, sparsity  # noqa: E402
from .schedules import gradual, iterative, oneshot, polynomial_decay  # noqa: E402
from .storage import load, save  # noqa: E402
from .summary import Summary, summary  # noqa: E402


def masks(model) -> dict:
    """``{variable.path: kept mask}`` of every masked variable of ``model`` (NumPy bool arrays)."""
    return {path: mask for path, (_, mask) in _get_masks(model).items()}


__all__ = [
    "prune", "sparsity", "masks", "unprune", "apply_masks", "MaskConstraint", "PruningCallback", "schedules",
    "oneshot", "iterative", "gradual", "polynomial_decay", "compact", "save", "load", "summary", "Summary",
    "KerasMissingError", "UnbuiltModelError",
]
