"""Pruning schedules — which sparsity when: one-shot, iterative rounds, gradual (Zhu & Gupta).

Schedule math only. A schedule carries the ``pk.prune`` options it prunes with (structure, score,
scope, method, exclude…), so every schedule works with every method; the one prune → fine-tune
driver (:mod:`prunekit.training.driver`, also ``pk.schedules.run``) runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..api import prunable, sparsity_for_compression
from ..errors import InvalidSparsityError, PruneError
from .driver import GradualPruning, compression_of, run


def _target(sparsity: float | None, compression: float | None) -> tuple[float | None, float | None]:
    if (sparsity is None) == (compression is None):
        raise InvalidSparsityError("pass exactly one of sparsity= (final fraction pruned) or compression=")
    if sparsity is not None and not 0 <= sparsity < 1:
        raise InvalidSparsityError(f"sparsity must be in [0, 1) (got {sparsity})")
    return sparsity, compression


@dataclass
class Schedule:
    """Prune in rounds to the final ``sparsity`` (or ``compression``); ``options`` go to ``pk.prune``."""

    sparsity: float | None = None
    compression: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def final(self, model: nn.Module) -> float:
        """The final sparsity for ``model`` (a compression target depends on its dense parameters)."""
        if self.sparsity is not None:
            return self.sparsity
        return sparsity_for_compression(model, prunable(model, self.options.get("exclude", ())), self.compression)

    def sparsities(self, final: float | None = None) -> list[float]:
        """The sparsity reached after each round (the last equals the final sparsity)."""
        return [self.sparsity if final is None else final]


class Oneshot(Schedule):
    """Prune once to the target, then fine-tune."""


@dataclass
class Iterative(Schedule):
    """``rounds`` of prune → fine-tune. "geometric": each round removes the same fraction
    p = 1 − (1 − s)^(1/R) of what remains (the lottery-ticket convention), so s_r = 1 − (1 − s)^(r/R);
    "linear": s_r = s · r / R."""

    rounds: int = 5
    mode: str = "geometric"

    def __post_init__(self):
        if self.rounds < 1 or self.mode not in ("geometric", "linear"):
            raise PruneError("iterative needs rounds >= 1 and mode 'geometric' or 'linear'")

    def sparsities(self, final: float | None = None) -> list[float]:
        s, n = (self.sparsity if final is None else final), self.rounds
        if self.mode == "linear":
            return [s * r / n for r in range(1, n + 1)]
        return [1 - (1 - s) ** (r / n) for r in range(1, n + 1)]


@dataclass
class Gradual(Schedule):
    """Zhu & Gupta 2017: prune at steps t₀ + kΔt (k = 0…n) during training to
    s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(nΔt))³, holding each value until the next pruning step."""

    start: int = 0
    every: int = 100
    n: int = 10
    initial: float = 0.0

    def __post_init__(self):
        if self.start < 0 or self.every < 1 or self.n < 1 or not 0 <= self.initial < 1:
            raise PruneError("gradual needs start >= 0, every >= 1, n >= 1 and initial in [0, 1)")

    @property
    def steps(self) -> list[int]:
        """The optimizer steps after which the model is pruned."""
        return [self.start + k * self.every for k in range(self.n + 1)]

    def sparsity_at(self, step: int, final: float | None = None) -> float:
        """The sparsity the schedule asks for once ``step`` optimizer steps are done (0 before t₀)."""
        if step < self.start:
            return 0.0
        s_f = self.sparsity if final is None else final
        k = min((step - self.start) // self.every, self.n)
        return s_f + (self.initial - s_f) * (1 - k / self.n) ** 3

    def sparsities(self, final: float | None = None) -> list[float]:
        return [self.sparsity_at(t, final) for t in self.steps]

    def callback(self, data: Any = None, example_inputs: Any = None) -> GradualPruning:
        """A :class:`Callback` that prunes on this schedule inside ``pk.train``."""
        return GradualPruning(self, data, example_inputs)


def oneshot(sparsity: float | None = None, *, compression: float | None = None, **prune_options: Any) -> Oneshot:
    """Prune once to ``sparsity`` (or ``compression``) with any ``pk.prune`` options, then fine-tune."""
    return Oneshot(*_target(sparsity, compression), prune_options)


def iterative(sparsity: float | None = None, *, rounds: int, mode: str = "geometric",
              compression: float | None = None, **prune_options: Any) -> Iterative:
    """``rounds`` of prune-then-fine-tune reaching ``sparsity``; ``mode`` "geometric" or "linear"."""
    return Iterative(*_target(sparsity, compression), prune_options, rounds, mode)


def gradual(sparsity: float | None = None, *, start: int, every: int, n: int, initial: float = 0.0,
            compression: float | None = None, **prune_options: Any) -> Gradual:
    """Zhu & Gupta's cubic schedule over optimizer steps ``start + k·every``, k = 0…``n``."""
    return Gradual(*_target(sparsity, compression), prune_options, start, every, n, initial)


SCHEDULES = ("oneshot", "iterative", "gradual")


def make(kind: str, *, sparsity: float | None = None, compression: float | None = None,
         macs_reduction: float | None = None, rounds: int = 3, mode: str = "geometric", start: int = 0,
         every: int = 50, n: int = 5, initial: float = 0.0, **prune_options: Any) -> Schedule:
    """A schedule by name (one of :data:`SCHEDULES`) to one target. A ``macs_reduction`` target goes to
    ``pk.prune`` in place of a sparsity, so it prunes one-shot only."""
    if kind not in SCHEDULES:
        raise PruneError(f"unknown schedule {kind!r}; valid schedules: {', '.join(SCHEDULES)}")
    if macs_reduction is not None:
        if kind != "oneshot" or sparsity is not None or compression is not None:
            raise PruneError("a macs_reduction target prunes one-shot, alone: use schedule oneshot, no sparsity")
        return Oneshot(0.0, None, {**prune_options, "macs_reduction": macs_reduction})
    if kind == "iterative":
        return iterative(sparsity, rounds=rounds, mode=mode, compression=compression, **prune_options)
    if kind == "gradual":
        return gradual(sparsity, start=start, every=every, n=n, initial=initial, compression=compression,
                       **prune_options)
    return oneshot(sparsity, compression=compression, **prune_options)


__all__ = ["SCHEDULES", "make", "Schedule", "Oneshot", "Iterative", "Gradual", "GradualPruning", "oneshot", "iterative", "gradual",
           "run", "compression_of"]
