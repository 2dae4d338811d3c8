"""When a Keras model is pruned during ``fit``: one-shot, iterative rounds, gradual cubic (Zhu & Gupta).

A schedule is math only: :meth:`plan` lists ``(step, sparsity)`` pairs, a step being the number of
optimizer steps (batches) done since the :class:`~prunekit.keras.PruningCallback` first saw training
begin. The iterative and gradual sparsities are those of :mod:`prunekit.training.schedules`, so a Keras and a
PyTorch run of the same schedule prune to the same values. :func:`polynomial_decay` takes TF-MOT's
``PolynomialDecay`` arguments (power 3) and reaches ``final_sparsity`` exactly at ``end_step``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..training import schedules as pk_schedules
from ..errors import InvalidSparsityError, PruneError


def _check(s: float) -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 1:
        raise InvalidSparsityError(f"sparsity must be in [0, 1) (got {s!r}); for example sparsity=0.9")
    return float(s)


def _steps(step: int | None, epoch: int | None, steps_per_epoch: int | None) -> int:
    if epoch is None:
        return int(step or 0)
    if not steps_per_epoch:
        raise PruneError("an epoch-based schedule needs to know the steps per epoch: pass steps_per_epoch= to fit "
                         "or give the schedule in steps")
    return int(epoch) * int(steps_per_epoch)


@dataclass
class OneShot:
    """Prune once to ``sparsity`` after ``step`` optimizer steps (or at the start of ``epoch``)."""

    sparsity: float
    step: int | None = 0
    epoch: int | None = None

    def plan(self, steps_per_epoch: int | None = None) -> list[tuple[int, float]]:
        return [(_steps(self.step, self.epoch, steps_per_epoch), _check(self.sparsity))]


@dataclass
class Iterative:
    """``rounds`` prunes, ``every`` steps (or ``every_epochs`` epochs) apart from ``start``, reaching ``sparsity``.

    ``mode`` "geometric" removes the same fraction of what remains each round; "linear" equal steps.
    """

    sparsity: float
    rounds: int
    every: int | None = None
    every_epochs: int | None = None
    start: int = 0
    mode: str = "geometric"

    def plan(self, steps_per_epoch: int | None = None) -> list[tuple[int, float]]:
        if (self.every is None) == (self.every_epochs is None):
            raise PruneError("iterative needs exactly one of every= (steps) or every_epochs=")
        gap = _steps(None, self.every_epochs, steps_per_epoch) if self.every is None else int(self.every)
        values = pk_schedules.Iterative(_check(self.sparsity), None, {}, self.rounds, self.mode).sparsities()
        return [(self.start + r * gap, s) for r, s in enumerate(values)]


@dataclass
class Gradual:
    """Zhu & Gupta's cubic schedule: at steps ``start + k·every`` (k = 0…n) prune to
    s_f + (s_i − s_f)(1 − k/n)³; the last prune, at ``start + n·every``, reaches ``sparsity`` exactly."""

    sparsity: float
    start: int = 0
    every: int = 100
    n: int = 10
    initial: float = 0.0

    def plan(self, steps_per_epoch: int | None = None) -> list[tuple[int, float]]:
        g = pk_schedules.Gradual(_check(self.sparsity), None, {}, self.start, self.every, self.n, _check(self.initial))
        return [(t, s) for t, s in zip(g.steps, g.sparsities()) if s > 0]


def oneshot(sparsity: float, *, step: int | None = 0, epoch: int | None = None) -> OneShot:
    """Prune once, after ``step`` optimizer steps or at the start of ``epoch`` (0-based)."""
    return OneShot(sparsity, step, epoch)


def iterative(sparsity: float, *, rounds: int, every: int | None = None, every_epochs: int | None = None,
              start: int = 0, mode: str = "geometric") -> Iterative:
    """``rounds`` prunes reaching ``sparsity``, ``every`` steps (or ``every_epochs`` epochs) apart."""
    return Iterative(sparsity, rounds, every, every_epochs, start, mode)


def gradual(sparsity: float, *, start: int = 0, every: int = 100, n: int = 10, initial: float = 0.0) -> Gradual:
    """Zhu & Gupta's cubic schedule over optimizer steps ``start + k·every``, k = 0…``n``."""
    return Gradual(sparsity, start, every, n, initial)


def polynomial_decay(initial_sparsity: float, final_sparsity: float, begin_step: int, end_step: int,
                     frequency: int = 100) -> Gradual:
    """TF-MOT's ``PolynomialDecay`` (power 3) as a :class:`Gradual`; ``end_step − begin_step`` must be a
    multiple of ``frequency`` so that the last prune lands on ``end_step``."""
    span = end_step - begin_step
    if frequency < 1 or span < frequency or span % frequency:
        raise PruneError(f"end_step - begin_step ({span}) must be a positive multiple of frequency ({frequency})")
    return Gradual(final_sparsity, begin_step, frequency, span // frequency, initial_sparsity)
