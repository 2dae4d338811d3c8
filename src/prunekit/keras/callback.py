"""``PruningCallback``: prunes a Keras model on a schedule during ``fit`` (the Keras-native equivalent of
TF-MOT's ``prune_low_magnitude`` + ``UpdatePruningStep``, without wrapping layers).

Between prunes, the masks are held by the variables' :class:`~prunekit.keras.masks.MaskConstraint`
(applied by the optimizer inside every train step); the callback also re-applies them when training
ends, so the model handed back is exactly as sparse as the schedule says.
"""
from __future__ import annotations

from typing import Any

from . import masks as kmasks
from .errors import require_keras
from .prune import prune
from .schedules import OneShot

keras = require_keras()


class PruningCallback(keras.callbacks.Callback):
    """Prune during ``fit`` on ``schedule`` (a :mod:`prunekit.keras.schedules` object or a sparsity, which
    means one-shot before the first step); ``prune_options`` go to :func:`prunekit.keras.prune`
    (structure, score, scope, exclude, outputs, seed). ``step`` counts optimizer steps across fits."""

    def __init__(self, schedule: Any, **prune_options: Any):
        super().__init__()
        self.schedule = OneShot(schedule) if isinstance(schedule, (int, float)) else schedule
        self.options = prune_options
        self.step = 0
        self.history: list[tuple[int, float]] = []  # (step, sparsity) of every prune done
        self._pending: list[tuple[int, float]] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._pending is None:
            self._pending = sorted(self.schedule.plan(self.params.get("steps")))
        self._maybe_prune()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        self._maybe_prune()

    def on_train_end(self, logs: dict | None = None) -> None:
        kmasks.apply(self.model)

    def _maybe_prune(self) -> None:
        due = [s for t, s in self._pending if t <= self.step]
        if not due:
            return
        self._pending = [(t, s) for t, s in self._pending if t > self.step]
        target = max(due)
        prune(self.model, target, **self.options)  # self.model syncs backend state (JAX) first
        self.history.append((self.step, target))
