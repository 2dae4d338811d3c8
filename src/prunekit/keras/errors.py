"""Errors of the Keras integration, each a :class:`prunekit.PruneError` that says what to do."""
from __future__ import annotations

from ..errors import CompactionError, PruneError, StorageFormatError, UnsupportedLayerError

__all__ = ["KerasMissingError", "UnbuiltModelError", "UnsupportedLayerError", "CompactionError",
           "StorageFormatError"]


class KerasMissingError(PruneError):
    """Keras 3 is not installed (or an old ``tf.keras`` 2 was found instead)."""


class UnbuiltModelError(PruneError):
    """The model has no weights yet: it must be built before it can be pruned."""


def require_keras():
    """The ``keras`` module, if it is Keras 3; otherwise a :class:`KerasMissingError` that says how to get it."""
    try:
        import keras
    except ImportError:
        raise KerasMissingError(
            "prunekit.keras needs Keras 3: pip install 'prunekit[keras]' (and a backend: torch, jax or tensorflow)"
        ) from None
    if not str(getattr(keras, "__version__", "0")).startswith("3"):
        raise KerasMissingError(
            f"prunekit.keras needs Keras 3, found keras {keras.__version__}; pip install 'keras>=3' "
            "(TF-MOT covers the old tf_keras)"
        )
    return keras
