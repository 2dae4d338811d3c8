"""The one prune → fine-tune driver, used by ``pk.schedules.run``, the benchmark harness and the CLI.

One meaning of every schedule (``prunekit.training.schedules`` says which sparsity when):

* one-shot: prune once to the target, then retrain once;
* iterative: R rounds of prune → retrain, reaching the target in the last round;
* gradual (Zhu & Gupta): prune at optimizer steps ``start + k·every`` *inside* the retraining run,
  which is the same budget the other schedules retrain with; the steps after the last pruning step
  recover at the final sparsity, and only epochs that end after it are candidates for
  ``restore_best`` (an earlier epoch holds a less pruned model).

Retraining is :func:`prunekit.finetune`, one of its variants (continue, rewinding, controls).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..api import METHODS, prune
from ..api import sparsity as achieved_sparsity
from ..choices import needs
from ..data.base import num_batches
from ..errors import MissingDataError, PruneError
from .callbacks import Callback, History, TrainState
from .rewind import VARIANTS, finetune

OnPruned = Callable[[int, bool, nn.Module], None]  # (round, is the last pruning, model)


def compression_of(model: nn.Module) -> float:
    """All parameters / nonzero parameters (ShrinkBench's compression)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params) / max(1, sum(int(p.count_nonzero()) for p in params))


def prune_inputs(options: Mapping[str, Any], data: Any = None, example_inputs: Any = None) -> dict[str, Any]:
    """The inputs ``pk.prune`` needs for these options, as its keywords; asks the score and structure.

    A data-driven score without ``data``, or a traced structure without ``example_inputs``, raises
    :class:`MissingDataError` before any training is spent.
    """
    score = options.get("score")
    if score is None and options.get("method") in METHODS:  # a baseline name sets the score
        score = METHODS[options["method"]][0]
    need = needs(options.get("structure", "weights"), score)
    out: dict[str, Any] = {}
    if need.data:
        if data is None and options.get("data") is None:
            raise MissingDataError(f"score {score!r} needs data: pass a few training batches")
        out["data"] = options.get("data", data)
    if need.example_inputs:
        if example_inputs is None and options.get("example_inputs") is None:
            raise MissingDataError(f"structure {options.get('structure')!r} traces the model: pass example inputs")
        out["example_inputs"] = options.get("example_inputs", example_inputs)
    return out


def prune_to(model: nn.Module, options: Mapping[str, Any], sparsity: float, inputs: Mapping[str, Any]) -> None:
    """``pk.prune`` with a schedule's options at ``sparsity``; N:M (which fixes its own) and a
    ``macs_reduction`` target (which replaces it) get none."""
    fixed = needs(options.get("structure", "weights")).fixed_sparsity
    own = fixed is not None or options.get("macs_reduction") is not None
    prune(model, None if own else sparsity, **{**options, **inputs})


def target_sparsity(model: nn.Module, options: Mapping[str, Any], inputs: Mapping[str, Any],
                    compression: float) -> float:
    """The sparsity that makes ``model`` reach ``compression`` (all / nonzero parameters) when pruned with
    ``options``: N:M's own; for a traced structure (channels, heads) the smallest fraction of units that
    reaches it, by bisection on copies; otherwise the fraction of prunable weights."""
    import copy

    from ..api import prunable, sparsity_for_compression
    from ..errors import InvalidSparsityError

    structure = options.get("structure", "weights")
    need = needs(structure)
    if need.fixed_sparsity is not None:
        return need.fixed_sparsity
    if not need.example_inputs:
        return sparsity_for_compression(model, prunable(model, options.get("exclude", ())), compression)

    def reached(s: float) -> float:
        trial = copy.deepcopy(model)
        prune_to(trial, options, s, inputs)
        return compression_of(trial)

    lo, hi = 0.0, 0.99
    if reached(hi) < compression:
        raise InvalidSparsityError(f"compression {compression:g} is out of reach for structure {structure!r} "
                                   f"(at most {reached(hi):.2f} removing 99% of its units); lower it")
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if reached(mid) >= compression else (mid, hi)
    return hi


class GradualPruning(Callback):
    """Prunes the training model at each of a gradual schedule's steps (masks only ever grow)."""

    def __init__(self, schedule: Any, data: Any = None, example_inputs: Any = None,
                 on_pruned: OnPruned | None = None):
        self.schedule, self.on_pruned, self.final = schedule, on_pruned, None
        self.inputs = prune_inputs(schedule.options, data, example_inputs)

    def on_train_begin(self, state: TrainState) -> None:
        self.final = self.schedule.final(state.model)
        self.on_step_end(state)

    def on_step_end(self, state: TrainState) -> None:
        steps = self.schedule.steps
        if state.step in steps:
            s = self.schedule.sparsity_at(state.step, self.final)
            if s > 0:
                prune_to(state.model, self.schedule.options, s, self.inputs)
                state.history.since = state.epoch  # the epoch in progress ends with the new masks
            if self.on_pruned is not None:
                self.on_pruned(steps.index(state.step) + 1, state.step == steps[-1], state.model)


@dataclass
class Retraining:
    """How survivors are retrained after each pruning: a :data:`VARIANTS` entry and its budgets.

    ``options`` go to :func:`prunekit.train` for ``continue`` (``epochs`` or ``steps``, lr…). The
    other variants replay the original training: ``replay`` holds its options (``epochs`` = T),
    ``rewind_state``/``rewind_step`` where to rewind to (see :func:`prunekit.finetune`).
    """

    variant: str = "continue"
    options: Mapping[str, Any] = field(default_factory=lambda: {"epochs": 1})
    replay: Mapping[str, Any] | None = None
    rewind_state: Mapping[str, Any] | None = None
    rewind_step: int = 0

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise PruneError(f"unknown fine-tuning {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.variant != "continue" and self.replay is None:
            raise PruneError(f"fine-tuning {self.variant!r} replays the original training: pass replay= "
                             "(its pk.train options, epochs = T)")

    @property
    def run_options(self) -> Mapping[str, Any]:
        """The ``pk.train`` options of one retraining run."""
        return self.options if self.variant == "continue" else self.replay

    def steps(self, train: Any) -> int:
        """Optimizer steps of one retraining run on ``train``."""
        o = self.run_options
        return o["steps"] if o.get("steps") is not None else o.get("epochs", 0) * num_batches(
            train, o.get("batch_size", 128))


@dataclass
class Result:
    """One record per pruning round, every epoch of every retraining, and the last retraining's History."""

    rounds: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    history: History = field(default_factory=History)


def check_gradual(schedule: Any, retraining: Retraining, train: Any) -> None:
    """Refuse a gradual schedule that a retraining run cannot hold (before any training is spent)."""
    if not hasattr(schedule, "steps"):
        return
    if retraining.variant != "continue":
        raise PruneError("a gradual schedule prunes while fine-tuning; it takes finetune_variant 'continue' only")
    total = retraining.steps(train)
    if schedule.steps[-1] > total:
        raise PruneError(f"the gradual schedule prunes until step {schedule.steps[-1]} but fine-tuning has only "
                         f"{total} steps; lower start/every/n or fine-tune longer")


def prune_and_finetune(model: nn.Module, schedule: Any, train: Any, val: Any = None, *,
                       retraining: Retraining | None = None, data: Any = None, example_inputs: Any = None,
                       seed: int = 0, callbacks: tuple[Callback, ...] = (), on_pruned: OnPruned | None = None,
                       on_round: Callable[[dict, nn.Module], None] | None = None) -> Result:
    """Prune ``model`` on ``schedule`` and retrain it after each round (or, gradual, while retraining).

    ``data`` (a few batches) feeds scores that need data and ``example_inputs`` traced structures;
    each is handed to ``pk.prune`` only when the score or structure says it needs it.
    ``on_pruned(round, last, model)`` runs right after each pruning (before its retraining), and
    ``on_round(record, model)`` after each round's retraining. Round ``r`` retrains with seed ``seed + r``.
    """
    retraining = retraining or Retraining()
    final = schedule.final(model)
    result = Result()

    def retrain(rnd: int, extra: tuple[Callback, ...] = ()) -> None:
        history = finetune(model, retraining.variant, train, val, seed=seed + rnd,
                           rewind_state=retraining.rewind_state, rewind_step=retraining.rewind_step,
                           callbacks=(*extra, *callbacks), **retraining.run_options)
        result.epochs += history.records
        result.history = history

    def record(rnd: int, target: float, start: float) -> None:
        rec = {"round": rnd, "target_sparsity": target, "sparsity": achieved_sparsity(model),
               "compression": compression_of(model), "cpu_s": time.process_time() - start}
        rec.update({k: v for k, v in result.history.last.items() if k.startswith("val_")})
        result.rounds.append(rec)
        if on_round is not None:
            on_round(rec, model)

    if hasattr(schedule, "steps"):  # gradual: prunes inside one retraining run
        check_gradual(schedule, retraining, train)
        start = time.process_time()
        retrain(1, (GradualPruning(schedule, data, example_inputs, on_pruned),))
        record(1, schedule.sparsities(final)[-1], start)
        return result
    inputs = prune_inputs(schedule.options, data, example_inputs)
    targets = schedule.sparsities(final)
    for rnd, s in enumerate(targets, start=1):
        start = time.process_time()
        prune_to(model, schedule.options, s, inputs)
        if on_pruned is not None:
            on_pruned(rnd, rnd == len(targets), model)
        retrain(rnd)
        record(rnd, s, start)
    return result


def run(model: nn.Module, schedule: Any, train: Any, val: Any = None, *, epochs: int,
        finetune_variant: str = "continue", finetune_epochs: int | None = None, rewind_step: int = 0,
        pretrained: bool = False, rewind_state: dict | None = None, seed: int = 0, score_batches: int = 4,
        on_round: Callable[[dict, nn.Module], None] | None = None, **train_options: Any) -> list[dict]:
    """Train (unless ``pretrained``), then :func:`prune_and_finetune` on ``schedule``; one record per round.

    ``epochs`` is the training length T; ``finetune_variant`` is one of :data:`VARIANTS` ("continue"
    trains ``finetune_epochs``, default T, after each round, and a gradual schedule prunes inside
    that run; the rewinding variants replay T from step ``rewind_step``). Scores that need data get
    ``score_batches`` training batches, traced structures the first of them as example inputs.
    Round 0 is the model before pruning.
    """
    from ..data.base import batches
    from .loop import train as run_training
    from .rewind import Snapshot

    if finetune_variant not in VARIANTS:  # before the training it would waste
        raise PruneError(f"unknown fine-tuning {finetune_variant!r}; valid: {', '.join(VARIANTS)}")
    callbacks = tuple(train_options.pop("callbacks", ()))
    replay = {**train_options, "epochs": epochs}
    retraining = Retraining(finetune_variant, {**train_options, "epochs": finetune_epochs or epochs}, replay,
                            rewind_state, rewind_step)
    check_gradual(schedule, retraining, train)
    gen = torch.Generator().manual_seed(seed)
    data = [b for _, b in zip(range(score_batches), batches(train, train_options.get("batch_size", 128),
                                                            shuffle=True, generator=gen))]
    start, history = time.process_time(), History()
    if not pretrained:
        snap = Snapshot(rewind_step)
        history = run_training(model, train, val, epochs=epochs, seed=seed, callbacks=[snap, *callbacks],
                               **train_options)
        retraining.rewind_state = rewind_state if rewind_state is not None else snap.state
    rec = {"round": 0, "target_sparsity": 0.0, "sparsity": achieved_sparsity(model),
           "compression": compression_of(model), "cpu_s": time.process_time() - start}
    rec.update({k: v for k, v in history.last.items() if k.startswith("val_")})
    if on_round is not None:
        on_round(rec, model)
    result = prune_and_finetune(model, schedule, train, val, retraining=retraining, data=data,
                                example_inputs=data[0][0] if data else None, seed=seed, callbacks=callbacks,
                                on_round=on_round)
    return [rec, *result.rounds]


__all__ = ["run", "prune_and_finetune", "check_gradual", "Retraining", "Result", "GradualPruning", "prune_inputs", "prune_to",
           "compression_of", "target_sparsity"]
