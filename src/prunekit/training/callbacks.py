"""Training-loop state, history and callbacks (evaluation, logging, checkpointing)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import CheckpointError
from ..masks import Masks, split_state, state_key
from .evaluate import evaluate


class History:
    """Per-epoch records (dicts of numbers) and the epoch chosen on validation accuracy."""

    def __init__(self, records: list[dict[str, float]] | None = None, select_on: str = "top1"):
        self.records: list[dict[str, float]] = list(records or [])
        self.select_on = select_on  # "top1" (highest wins) or "loss" (lowest wins: perplexity for text)
        self.since = 0  # epochs up to this one are no candidates: pruning inside training changed the model after them

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.records)

    def __getitem__(self, i: int) -> dict[str, float]:
        return self.records[i]

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1] if self.records else {}

    @property
    def best_epoch(self) -> int | None:
        """The epoch (1-based) with the best validation ``select_on`` (highest top-1 or lowest loss; earliest
        on ties) among the epochs after ``since``; None without val."""
        key, sign = f"val_{self.select_on}", -1 if self.select_on == "loss" else 1
        scored = [r for r in self.records if key in r and r["epoch"] > self.since]
        return max(scored, key=lambda r: (sign * r[key], -r["epoch"]))["epoch"] if scored else None

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, last={self.last})"


@dataclass
class TrainState:
    """What callbacks see: the model, optimizer, counters (``step`` counts optimizer steps) and history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    history: History = field(default_factory=History)
    record: dict[str, float] = field(default_factory=dict)
    stop: bool = False


class Callback:
    """Hooks into :func:`prunekit.train`; override what you need. ``state.record`` is the epoch's log."""

    def on_train_begin(self, state: TrainState) -> None:
        pass

    def on_step_end(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState) -> None:
        pass

    def on_train_end(self, state: TrainState) -> None:
        pass


class Evaluate(Callback):
    """Adds ``<name>_top1/top5/loss`` for ``data`` to each ``every``-th epoch's record (reporting only)."""

    def __init__(self, data: Any, name: str = "test", every: int = 1, batch_size: int = 512):
        self.data, self.name, self.every, self.batch_size = data, name, every, batch_size

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every == 0:
            for k, v in evaluate(state.model, self.data, batch_size=self.batch_size).items():
                state.record[f"{self.name}_{k}"] = v


class JSONLog(Callback):
    """Appends each epoch's record to a JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_epoch_end(self, state: TrainState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(state.record) + "\n")


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: TrainState) -> None:
    """Model, optimizer, RNG state, counters and history: tensors and plain numbers only."""
    _atomic_save({
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": state.epoch,
        "step": state.step,
        "history": state.history.records,
    }, path)


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint`, read with ``weights_only=True``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's to fix
        raise CheckpointError(f"cannot read checkpoint {str(path)!r} ({type(exc).__name__}: {exc}); "
                              "delete it or pass resume=False") from None


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` strictly, first attaching any masks it carries that the model lacks."""
    have = set(model.state_dict())
    masks = {q: m for q, m in split_state(state)[1].items() if state_key(q) not in have}
    if masks:
        Masks(masks).apply(model)
    model.load_state_dict(state, strict=True)


def restore_checkpoint(path: Path, state: TrainState) -> None:
    """Put the model, optimizer, RNG, counters and history back as they were when ``path`` was saved."""
    ckpt = read_checkpoint(path)
    load_model_state(state.model, ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"])
    state.epoch, state.step = int(ckpt["epoch"]), int(ckpt["step"])
    state.history = History(ckpt["history"])


class Checkpoint(Callback):
    """Writes ``last.pt`` after every epoch and ``best.pt`` when the validation metric improves."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def on_epoch_end(self, state: TrainState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if state.history.best_epoch == state.epoch:
            _atomic_save({"model": state.model.state_dict(), "epoch": state.epoch}, self.dir / "best.pt")
        save_checkpoint(self.dir / "last.pt", state)
