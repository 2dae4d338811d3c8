"""prunekit: prune PyTorch models by any structure, score, scope and schedule, and prove what it gained."""
from . import functional, scope, scores, sparse, structures, structures_nm
from .api import METHODS, prunable, prune, sparsity
from .errors import (
    InvalidSparsityError,
    MaskMismatchError,
    MissingDataError,
    NonFiniteWeightsError,
    NoPrunableLayersError,
    PruneError,
    UnknownNameError,
    UnsupportedLayerError,
    StorageFormatError,
    ExportError,
)
from .masks import Masks, unprune
from .metrics import LayerSummary, Summary, summary
from .sparse import densify, export_onnx, from_torch_prune, load, save, sparsify, to_torch_prune

__version__ = "0.1.0"

__all__ = [
    "prune", "unprune", "sparsity", "summary", "prunable", "METHODS",
    "Masks", "Summary", "LayerSummary",
    "scores", "scope", "structures", "functional",
    "PruneError", "InvalidSparsityError", "UnknownNameError", "MissingDataError",
    "NoPrunableLayersError", "NonFiniteWeightsError", "UnsupportedLayerError", "MaskMismatchError",
    "sparse", "structures_nm", "save", "load", "sparsify", "densify", "export_onnx",
    "from_torch_prune", "to_torch_prune", "StorageFormatError", "ExportError",
]
