"""A Hugging Face ``transformers`` ``TrainerCallback`` that prunes on a schedule during ``Trainer.train``
(``pip install 'prunekit[hf]'``).

::

    from prunekit.integrations.trainer import PruningCallback
    trainer = Trainer(model, args, train_dataset=ds,
                      callbacks=[PruningCallback(pk.schedules.iterative(0.8, rounds=4), at=0, every=200)])
"""
from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as err:
    raise ImportError("prunekit.integrations.trainer needs transformers: pip install 'prunekit[hf]'") from err

from ..training.schedules import Schedule
from .steps import StepPruner


class PruningCallback(TrainerCallback):
    """Prunes the Trainer's model at ``schedule``'s optimizer steps (``state.global_step``): one-shot
    at ``at``, iterative every ``every`` steps from ``at``, gradual on its own steps. prunekit's masks
    hold pruned weights at exactly zero through the Trainer's optimizer, weight decay and clipping.
    """

    def __init__(self, schedule: Schedule, *, at: int = 0, every: int = 1, data: Any = None,
                 example_inputs: Any = None):
        self.pruner = StepPruner(schedule, at=at, every=every, data=data, example_inputs=example_inputs)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:
        self.pruner.begin(model, optimizer)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.step(state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.end(state.global_step)
