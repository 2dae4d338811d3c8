"""prunekit: prune PyTorch models by any structure, score, scope and schedule, and prove what it gained."""
from . import functional, scope, scores, structures
from .api import METHODS, prunable, prune, sparsity
from .errors import (
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
    "PruneError", "InvalidSparsityError", "UnknownNameError", "MissingDataError",
    "NoPrunableLayersError", "NonFiniteWeightsError", "UnsupportedLayerError", "MaskMismatchError",
    "InsufficientSamplesError", "theory",
]
