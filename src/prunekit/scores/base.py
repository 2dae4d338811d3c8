"""The Score interface: how important is each weight? A score never thresholds."""
from __future__ import annotations

from abc import ABC, abstractmethod

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..registry import Registry


@dataclass
class Target:
    """One prunable parameter: its qualified name, owning module and attribute name."""

    qname: str
    module: nn.Module
    pname: str

    @property
    def param(self) -> torch.Tensor:
        return getattr(self.module, self.pname)


@dataclass
class ScoreContext:
    """What a score may look at besides the weight: the target, its index, the seed, prepared state."""

    target: Target
    index: int
    seed: int
    state: Any = None
    rows: slice = field(default_factory=lambda: slice(None))  # which rows (dim 0) of the parameter the scored weight block holds


class Score(ABC):
    """Elementwise importance (higher = more important), shaped like the weight.

    ``reduce`` says how a structure combines elementwise scores into one score per unit
    ("sum", "l2", "mean", "max" or "first"). ``prepare`` runs once per ``prune`` call, before
    any scoring, and returns state handed to every call (gradients, for example). An
    ``elementwise`` score is called on blocks of rows (``context.rows``) to bound memory; set it
    False for a score that must see the whole tensor at once.
    """

    reduce = "sum"
    needs_data = False
    elementwise = True  # scores of a row block depend only on that block: scored in chunks

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return None

    @abstractmethod
    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


registry: Registry[Score] = Registry("score", Score)
register = registry.register
