"""prunekit: prune PyTorch models by any structure, score, scope and schedule, and prove what it gained."""
from . import data, functional, models, scope, scores, structures
from .api import METHODS, prunable, prune, sparsity
from .callbacks import Callback, History
from .errors import (
    CheckpointError,
    DataFileError,
    InsufficientSamplesError,
    InvalidSparsityError,
    MaskMismatchError,
    MissingDataError,
    NonFiniteWeightsError,
    NoPrunableLayersError,
    PruneError,
    UnknownNameError,
    UnsupportedLayerError,
)
from .masks import Masks, unprune
from .metrics import LayerSummary, Summary, summary
from .training import evaluate, train

__version__ = "0.1.0"


def __getattr__(name: str):
    """Import heavy optional parts on first use: ``pk.theory`` pulls in scipy."""
    if name == "theory":
        import importlib

        return importlib.import_module(".theory", __name__)
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")


__all__ = [
    "prune", "unprune", "sparsity", "summary", "prunable", "METHODS",
    "Masks", "Summary", "LayerSummary",
    "scores", "scope", "structures", "functional",
    "data", "models", "train", "evaluate", "Callback", "History", "DataFileError", "CheckpointError",
    "PruneError", "InvalidSparsityError", "UnknownNameError", "MissingDataError",
    "NoPrunableLayersError", "NonFiniteWeightsError", "UnsupportedLayerError", "MaskMismatchError",
    "InsufficientSamplesError", "theory",
]
