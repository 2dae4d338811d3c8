"""Any schedule as pruning steps inside one training run, driven by the one prune driver's callback.

A framework callback (Lightning, Hugging Face Trainer) counts optimizer steps; :class:`StepPruner`
maps them onto :class:`prunekit.training.driver.GradualPruning`: one-shot prunes once at step ``at``,
iterative prunes round r at step ``at + r·every`` (r = 0…R-1), gradual keeps its own steps. Masks are
prunekit's, so pruned weights stay exactly zero through the framework's optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import PruneError
from ..training.callbacks import TrainState
from ..training.driver import GradualPruning
from ..training.schedules import Gradual, Schedule


@dataclass
class _AtSteps:
    """A one-shot or iterative schedule seen as steps: round r at ``at + r·every``."""

    schedule: Schedule
    at: int
    every: int

    @property
    def options(self) -> dict[str, Any]:
        return self.schedule.options

    def final(self, model: nn.Module) -> float:
        return self.schedule.final(model)

    @property
    def steps(self) -> list[int]:
        return [self.at + r * self.every for r in range(len(self.schedule.sparsities(0.0)))]

    def sparsity_at(self, step: int, final: float | None = None) -> float:
        done = [s for t, s in zip(self.steps, self.schedule.sparsities(final)) if t <= step]
        return done[-1] if done else 0.0


class StepPruner:
    """Prunes a model at a schedule's optimizer steps; the framework calls :meth:`begin`, :meth:`step`, :meth:`end`."""

    def __init__(self, schedule: Schedule, *, at: int = 0, every: int = 1, data: Any = None,
                 example_inputs: Any = None):
        if at < 0 or every < 1:
            raise PruneError(f"prune at step >= 0 every >= 1 steps (got at={at}, every={every})")
        steps = schedule if isinstance(schedule, Gradual) else _AtSteps(schedule, at, every)
        self.callback = GradualPruning(steps, data, example_inputs)
        self.state: TrainState | None = None

    @property
    def steps(self) -> list[int]:
        """The optimizer steps after which the model is pruned (0: before the first step)."""
        return self.callback.schedule.steps

    def begin(self, model: nn.Module, optimizer: Any = None) -> None:
        """Before training: the final target is fixed, and step-0 pruning happens now."""
        self.state = TrainState(model=model, optimizer=optimizer)
        self.callback.on_train_begin(self.state)

    def step(self, global_step: int) -> None:
        """After optimizer step ``global_step`` (1-based count of steps done)."""
        if self.state is None:
            raise PruneError("the pruning callback saw a step before training began")
        self.state.step = global_step
        self.callback.on_step_end(self.state)

    def end(self, global_step: int) -> None:
        """After training: refuse to end silently short of the schedule's final sparsity."""
        if global_step < self.steps[-1]:
            raise PruneError(f"training ended after {global_step} steps, before the schedule's last pruning step "
                             f"{self.steps[-1]}: the model is not at its final sparsity; train longer or prune earlier")
