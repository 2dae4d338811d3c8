"""Fine-tuning: the train/evaluate loop, callbacks and checkpoints, rewinding, and pruning schedules."""
from . import callbacks, rewind, schedules
from .callbacks import Callback, History, TrainState
from .evaluate import evaluate
from .loop import lr_factor, make_optimizer, train
from .rewind import finetune

__all__ = ["train", "evaluate", "finetune", "lr_factor", "make_optimizer", "Callback", "History", "TrainState",
           "callbacks", "rewind", "schedules"]
