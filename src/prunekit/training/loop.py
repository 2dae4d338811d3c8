"""A small, readable train / evaluate loop: deterministic for a seed, masks held, checkpoint and resume.

Pruned weights stay zero through training without any call here: the masks' optimizer step hook
(see ``masks.py``) re-zeroes them after every ``torch.optim`` step.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from ..data.base import batches, num_batches
from ..data.text import TextWindows
from ..errors import PruneError
from ..inputs import check_training
from .callbacks import Callback, Checkpoint, History, TrainState, load_model_state, read_checkpoint, restore_checkpoint
from ..losses import cross_entropy, scored
from .evaluate import device_of, evaluate

LRSchedule = Callable[[int, int], float]  # (step, total steps) -> multiplier of the base LR


def lr_factor(schedule: str | LRSchedule, step: int, total: int, *, milestones: Sequence[int] = (),
              gamma: float = 0.1, warmup: int = 0) -> float:
    """The LR multiplier at ``step`` of ``total``: "constant", "cosine", "step" (× ``gamma`` at each
    milestone step) or a callable; a linear warm-up over the first ``warmup`` steps on top."""
    if callable(schedule):
        factor = schedule(step, total)
    elif schedule == "constant":
        factor = 1.0
    elif schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    elif schedule == "step":
        factor = gamma ** sum(step >= m for m in milestones)
    else:
        raise PruneError(f"unknown lr_schedule {schedule!r}; use 'constant', 'cosine', 'step' or a callable")
    return factor * min(1.0, (step + 1) / warmup) if warmup else factor


def make_optimizer(name: str | Callable, params: Iterable[nn.Parameter], lr: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """"sgd" (with momentum), "adam", "adamw", or a callable ``params -> optimizer``."""
    if callable(name):
        return name(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise PruneError(f"unknown optimizer {name!r}; use 'sgd', 'adam', 'adamw' or a callable")


@contextlib.contextmanager
def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        yield lambda **kw: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("", total=total, completed=done)
        yield lambda **kw: bar.update(task, **kw)


def _param_groups(model: nn.Module, decay_all: bool) -> Any:
    """The model's parameters, or two groups: matrices and kernels decayed, vectors (norms, biases) not."""
    if decay_all:
        return model.parameters()
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def _select_on(select_on: str | None, val: Any) -> str:
    """The validation metric that picks the best epoch: as given, else the loss for text (perplexity)."""
    if select_on is None:
        return "loss" if isinstance(getattr(val, "dataset", val), TextWindows) else "top1"
    if select_on not in ("top1", "loss"):
        raise PruneError(f"select_on must be 'top1' or 'loss', got {select_on!r}")
    return select_on


def train(model: nn.Module, train: Any, val: Any = None, *, epochs: int | None = None, steps: int | None = None,
          seed: int = 0, batch_size: int = 128, lr: float = 0.1, optimizer: str | Callable = "sgd",
          momentum: float = 0.9, weight_decay: float = 0.0, decay_norms_and_biases: bool = True,
          lr_schedule: str | LRSchedule = "constant", milestones: Sequence[float] = (), gamma: float = 0.1, warmup_steps: int = 0,
          schedule_offset: int = 0, schedule_total: int | None = None, loss_fn: Callable | None = None,
          callbacks: Sequence[Callback] = (), checkpoint_dir: str | Path | None = None, resume: bool = False,
          restore_best: bool = False, select_on: str | None = None, eval_batch_size: int = 512,
          progress: bool = True, device: Any = None) -> History:
    """Train ``model`` in place for ``epochs`` (or ``steps`` optimizer steps) and return its History.

    Deterministic for a ``seed``: the global RNG is seeded and each epoch's shuffle comes from
    (seed, epoch). ``val`` is evaluated after each epoch; ``restore_best`` loads the weights of the
    best validation epoch at the end (the test set is never used for selection); ``select_on`` is
    "top1" (highest) or "loss" (lowest), by default "loss" for text windows (perplexity), else
    "top1". ``decay_norms_and_biases=False`` exempts every parameter of fewer than two dimensions
    (normalization gains and shifts, biases) from ``weight_decay``, as GPT-2 and LLaMA recipes do; the
    default decays every parameter, as a plain torch optimizer does. The LR follows
    ``lr_schedule`` over the run; ``milestones`` are epochs. ``schedule_offset``/``schedule_total``
    place the run inside a longer schedule (rewinding). With ``checkpoint_dir`` a checkpoint is
    written after every epoch, and ``resume=True`` continues from it exactly.
    """
    check_training(lr=lr, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, seed=seed)
    if (epochs is None) == (steps is None):
        raise PruneError("pass exactly one of epochs= or steps=")
    if not isinstance(decay_norms_and_biases, bool):  # "no" would be truthy and decay them silently
        raise PruneError(f"decay_norms_and_biases must be True or False (got {decay_norms_and_biases!r})")
    if (epochs if steps is None else steps) < 0:
        raise PruneError("epochs/steps must be >= 0")
    dev = device_of(model, device)
    loss_fn = loss_fn or cross_entropy
    per_epoch = num_batches(train, batch_size)
    total = steps if steps is not None else epochs * per_epoch
    n_epochs = math.ceil(total / per_epoch) if per_epoch else 0
    sched_total = schedule_total if schedule_total is not None else schedule_offset + total
    milestone_steps = [round(m * per_epoch) for m in milestones]

    torch.manual_seed(seed)
    opt = make_optimizer(optimizer, _param_groups(model, decay_norms_and_biases), lr, momentum, weight_decay)
    state = TrainState(model, opt, total_steps=total)
    ckpt = Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    best: dict[str, torch.Tensor] | None = None
    if ckpt is not None and resume and (ckpt.dir / "last.pt").exists():
        restore_checkpoint(ckpt.dir / "last.pt", state)
        if restore_best and (ckpt.dir / "best.pt").exists():
            best = read_checkpoint(ckpt.dir / "best.pt")["model"]
    state.history.select_on = _select_on(select_on, val)
    for cb in callbacks:
        cb.on_train_begin(state)
    model.train()
    with _progress(progress, total, state.step) as update:
        while state.epoch < n_epochs and state.step < total and not state.stop:
            start, seen, loss_sum, correct = time.process_time(), 0, 0.0, 0
            gen = torch.Generator().manual_seed(seed * 1_000_003 + state.epoch)
            for x, y in batches(train, batch_size, shuffle=True, generator=gen):
                if state.step >= total or state.stop:
                    break
                factor = lr_factor(lr_schedule, schedule_offset + state.step, sched_total,
                                   milestones=milestone_steps, gamma=gamma, warmup=warmup_steps)
                for group in opt.param_groups:
                    group["lr"] = lr * factor
                x, y = x.to(dev), y.to(dev)
                out = model(x)
                loss = loss_fn(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                state.step += 1
                count = scored(y)
                seen += count
                loss_sum += loss.item() * count
                correct += int((out.argmax(-1) == y).sum())
                for cb in callbacks:
                    cb.on_step_end(state)
                update(advance=1, description=f"epoch {state.epoch + 1}/{n_epochs} loss {loss.item():.3f}")
            state.epoch += 1
            state.record = {"epoch": state.epoch, "step": state.step, "lr": opt.param_groups[0]["lr"],
                            "train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
                            "cpu_s": time.process_time() - start}
            if val is not None:
                for k, v in evaluate(model, val, batch_size=eval_batch_size, loss_fn=None).items():
                    state.record[f"val_{k}"] = v
            state.history.records.append(state.record)
            if restore_best and val is not None and state.history.best_epoch == state.epoch:
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            for cb in callbacks:
                cb.on_epoch_end(state)
            if ckpt is not None:
                ckpt.on_epoch_end(state)
            model.train()
    for cb in callbacks:
        cb.on_train_end(state)
    if best is not None:
        load_model_state(model, best)
    return state.history
