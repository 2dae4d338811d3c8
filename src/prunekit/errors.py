"""Errors a user can cause. Each message says what went wrong and what to do instead."""
from __future__ import annotations


class PruneError(ValueError):
    """Base class of every error prunekit raises for a user mistake."""


class InvalidSparsityError(PruneError):
    """A sparsity outside [0, 1), a compression below 1, or an unreachable target."""


class UnknownNameError(PruneError):
    """A structure, score, scope, method or other registry name that does not exist."""


class MissingDataError(PruneError):
    """A score or step that needs data (for example gradients) was given none."""


class NoPrunableLayersError(PruneError):
    """The model (after `exclude`) has no layer that can be pruned."""


class NonFiniteWeightsError(PruneError):
    """A weight tensor holds NaN or infinite values, so its ranking would be meaningless."""


class UnsupportedLayerError(PruneError):
    """A layer or operation that the requested structure cannot handle."""


class MaskMismatchError(PruneError):
    """Masks that do not fit the model they are applied to."""


class UnsupportedOperationError(UnsupportedLayerError):
    """An operation whose channel coupling the dependency graph cannot resolve (named with its layer)."""


class CompactionError(PruneError):
    """Compaction would change the model's outputs, so no smaller model is returned."""


class DataFileError(PruneError):
    """A dataset file that is missing, truncated or not in the expected format."""


class CheckpointError(PruneError):
    """A weights or checkpoint file that cannot be read safely or does not fit the model."""


class StorageFormatError(PruneError):
    """A file that is not a prunekit sparse file, or one written for a different model."""


class ExportError(PruneError):
    """A model that cannot be exported or converted as asked."""


class InsufficientSamplesError(PruneError):
    """Too few inputs or mask draws for a confidence bound to reach the requested probability."""


class InvalidArgumentError(PruneError):
    """An argument of the wrong type, shape, range or device for the model it is used with."""


class StoreError(PruneError):
    """A results folder or database that cannot be used: unreadable, corrupt, busy, or another config's."""


class LayerCollapseError(PruneError):
    """A selection that would leave a layer with no surviving unit (layer collapse); ``layers`` names them."""

    def __init__(self, message: str, layers: list[str]):
        super().__init__(message)
        self.layers = layers
