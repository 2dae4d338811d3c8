"""Pruning schedules — when to prune and how much: one-shot, iterative rounds, gradual (Zhu & Gupta).

A schedule carries the ``pk.prune`` options it prunes with (structure, score, scope, method,
exclude…), so every schedule works with every method. :func:`run` drives the prune → fine-tune loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..api import prunable, prune, sparsity_for_compression
from ..api import sparsity as achieved_sparsity
from .callbacks import Callback, TrainState
from ..data.base import batches, num_batches
from ..errors import InvalidSparsityError, PruneError
from .rewind import VARIANTS, Snapshot, finetune
from .loop import train as run_training


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

    def prune(self, model: nn.Module, sparsity: float, data: Any = None) -> Any:
        options = dict(self.options)
        if data is not None:
            options.setdefault("data", data)
        return prune(model, sparsity, **options)


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

    def callback(self, data: Any = None) -> "GradualPruning":
        """A :class:`Callback` that prunes on this schedule inside ``pk.train``."""
        return GradualPruning(self, data)


class GradualPruning(Callback):
    """Prunes the training model at each of the schedule's steps (masks only ever grow)."""

    def __init__(self, schedule: Gradual, data: Any = None):
        self.schedule, self.data, self.final = schedule, data, None

    def on_train_begin(self, state: TrainState) -> None:
        self.final = self.schedule.final(state.model)
        self.on_step_end(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.step in self.schedule.steps:
            s = self.schedule.sparsity_at(state.step, self.final)
            if s > 0:
                self.schedule.prune(state.model, s, self.data)


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


def compression_of(model: nn.Module) -> float:
    """All parameters / nonzero parameters (ShrinkBench's compression)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params) / max(1, sum(int(p.count_nonzero()) for p in params))


def run(model: nn.Module, schedule: Schedule, train: Any, val: Any = None, *, epochs: int,
        finetune_variant: str = "continue", finetune_epochs: int | None = None, rewind_step: int = 0,
        pretrained: bool = False, rewind_state: dict | None = None, seed: int = 0, score_batches: int = 4,
        on_round: Callable[[dict, nn.Module], None] | None = None, **train_options: Any) -> list[dict]:
    """Train (unless ``pretrained``), then prune on ``schedule`` and fine-tune; one record per round.

    ``epochs`` is the training length T; ``finetune_variant`` is one of :data:`prunekit.training.rewind.VARIANTS`
    ("continue" trains ``finetune_epochs``, default T, after each round; the rewinding variants replay
    T from step ``rewind_step``). A :class:`Gradual` schedule prunes inside the training run itself.
    Scores that need data get ``score_batches`` training batches. ``on_round(record, model)`` is
    called after every round (for example to report test accuracy; never select on it).
    """
    if finetune_variant not in VARIANTS:
        raise PruneError(f"unknown fine-tuning {finetune_variant!r}; valid: {', '.join(VARIANTS)}")
    gen = torch.Generator().manual_seed(seed)
    data = [b for _, b in zip(range(score_batches), batches(train, train_options.get("batch_size", 128),
                                                            shuffle=True, generator=gen))]
    records: list[dict] = []

    def record(rnd: int, target: float, history: Any, start: float) -> None:
        rec = {"round": rnd, "target_sparsity": target, "sparsity": achieved_sparsity(model),
               "compression": compression_of(model), "cpu_s": time.process_time() - start}
        rec.update({k: v for k, v in (history.last if history else {}).items() if k.startswith("val_")})
        records.append(rec)
        if on_round is not None:
            on_round(rec, model)

    start = time.process_time()
    final = schedule.final(model)
    if isinstance(schedule, Gradual):
        if finetune_variant != "continue":
            raise PruneError("a gradual schedule prunes while training; it takes no finetune_variant")
        total = epochs * num_batches(train, train_options.get("batch_size", 128))
        if schedule.steps[-1] > total:
            raise PruneError(f"the gradual schedule prunes until step {schedule.steps[-1]} but training has only "
                             f"{total} steps; lower start/every/n or raise epochs")
        hist = run_training(
            model, train, val, epochs=epochs, seed=seed, callbacks=[schedule.callback(data)] + list(train_options.pop("callbacks", [])), **train_options)
        record(1, schedule.sparsities(final)[-1], hist, start)
        return records
    history = None
    if not pretrained:
        snap = Snapshot(rewind_step)
        history = run_training(model, train, val, epochs=epochs, seed=seed,
                               callbacks=[snap] + list(train_options.pop("callbacks", [])), **train_options)
        rewind_state = rewind_state if rewind_state is not None else snap.state
    record(0, 0.0, history, start)
    for rnd, s in enumerate(schedule.sparsities(final), start=1):
        start = time.process_time()
        schedule.prune(model, s, data)
        history = finetune(model, finetune_variant, train, val, seed=seed + rnd, rewind_state=rewind_state,
                           rewind_step=rewind_step, epochs=finetune_epochs if finetune_variant == "continue"
                           and finetune_epochs else epochs, **train_options)
        record(rnd, s, history, start)
    return records


__all__ = ["Schedule", "Oneshot", "Iterative", "Gradual", "GradualPruning", "oneshot", "iterative", "gradual",
           "run", "compression_of"]
