"""prunekit: prune PyTorch models by any structure, score, scope and schedule, and prove what it gained."""
from . import data, functional, models, scope, scores, sparse, structures, training
from .api import METHODS, prunable, prune, sparsity
from .errors import (
    CheckpointError,
    DataFileError,
    InsufficientSamplesError,
    InvalidSparsityError,
    LayerCollapseError,
    MaskMismatchError,
    MissingDataError,
    NonFiniteWeightsError,
    NoPrunableLayersError,
    PruneError,
    UnknownNameError,
    UnsupportedLayerError,
    StorageFormatError,
    ExportError,
    UnsupportedOperationError,
    CompactionError,
    InvalidArgumentError,
    StoreError,
)
from .masks import Masks, unprune
from .metrics import LayerSummary, Summary, summary
from .graph import compact
from .graph.io import load_compact, save_compact
from .graph.hf import save_pretrained
from .sparse import densify, export_onnx, from_torch_prune, load, save, sparsify, to_torch_prune
from .training import Callback, History, callbacks, evaluate, finetune, rewind, schedules, train

__version__ = "0.1.0"


def __getattr__(name: str):
    """Import heavy optional parts on first use: ``pk.theory`` pulls in scipy."""
    if name == "theory":
        import importlib

        return importlib.import_module(".theory", __name__)
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")


__all__ = [
    "prune", "unprune", "compact", "save_compact", "load_compact", "sparsity", "summary", "prunable", "METHODS",
    "save_pretrained",
    "Masks", "Summary", "LayerSummary",
    "scores", "scope", "structures", "functional",
    "data", "models", "train", "evaluate", "schedules", "rewind", "finetune", "callbacks", "Callback", "History", "DataFileError", "CheckpointError",
    "PruneError", "InvalidSparsityError", "UnknownNameError", "MissingDataError",
    "NoPrunableLayersError", "NonFiniteWeightsError", "UnsupportedLayerError", "MaskMismatchError",
    "sparse", "training", "save", "load", "sparsify", "densify", "export_onnx",
    "from_torch_prune", "to_torch_prune", "StorageFormatError", "ExportError",
    "UnsupportedOperationError", "CompactionError",
    "InsufficientSamplesError", "InvalidArgumentError", "StoreError", "LayerCollapseError", "theory",
]
