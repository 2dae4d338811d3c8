"""Fine-tuning: the train/evaluate loop, callbacks and checkpoints, rewinding, pruning schedules and the
one prune → fine-tune driver."""
from . import callbacks, driver, rewind, schedules
from .callbacks import Callback, History, TrainState
from .driver import Retraining, prune_and_finetune
from .evaluate import evaluate
from .loop import lr_factor, make_optimizer, train
from .rewind import finetune

__all__ = ["train", "evaluate", "finetune", "lr_factor", "make_optimizer", "Callback", "History", "TrainState",
           "callbacks", "rewind", "schedules", "driver", "prune_and_finetune", "Retraining"]
