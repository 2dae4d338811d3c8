"""A PyTorch Lightning callback that prunes on a schedule during ``Trainer.fit`` (``pip install 'prunekit[lightning]'``).

::

    from prunekit.integrations.lightning import PruningCallback
    cb = PruningCallback(pk.schedules.gradual(0.9, start=0, every=50, n=10))    # or oneshot(0.9), at=100
    trainer = lightning.Trainer(max_steps=1000, callbacks=[cb]); trainer.fit(module, loader)
"""
from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl
    except ImportError as err:
        raise ImportError("prunekit.integrations.lightning needs Lightning: pip install 'prunekit[lightning]'") from err

from ..training.schedules import Schedule
from .steps import StepPruner


class PruningCallback(pl.Callback):
    """Prunes the LightningModule at ``schedule``'s optimizer steps (one-shot at ``at``; iterative
    every ``every`` steps from ``at``; gradual on its own steps); masks hold pruned weights at zero.

    ``data`` (a few batches) feeds scores that need data; ``example_inputs`` traced structures.
    """

    def __init__(self, schedule: Schedule, *, at: int = 0, every: int = 1, data: Any = None,
                 example_inputs: Any = None):
        self.pruner = StepPruner(schedule, at=at, every=every, data=data, example_inputs=example_inputs)

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.pruner.begin(pl_module, optimizer)

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self.pruner.step(trainer.global_step)

    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.pruner.end(trainer.global_step)
