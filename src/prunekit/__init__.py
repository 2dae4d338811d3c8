"""prunekit: prune PyTorch models by any structure, score, scope and schedule, and prove what it gained."""
from . import callbacks, data, functional, models, rewind, schedules, scope, scores, structures
from .api import METHODS, prunable, prune, sparsity
from .callbacks import Callback, History
from .errors import (
    CheckpointError,
    DataFileError,
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
from .rewind import finetune
from .training import evaluate, train

__version__ = "0.1.0"

__all__ = [
    "prune", "unprune", "sparsity", "summary", "prunable", "METHODS",
    "Masks", "Summary", "LayerSummary",
    "scores", "scope", "structures", "functional",
    "data", "models", "train", "evaluate", "schedules", "rewind", "finetune", "callbacks", "Callback", "History", "DataFileError", "CheckpointError",
    "PruneError", "InvalidSparsityError", "UnknownNameError", "MissingDataError",
    "NoPrunableLayersError", "NonFiniteWeightsError", "UnsupportedLayerError", "MaskMismatchError",
]
