"""The Score interface: how important is each weight? A score never thresholds."""
from __future__ import annotations

from abc import ABC

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedLayerError
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


def by_slice(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` as one row per index of ``dim``: shape (t.shape[dim], rest)."""
    return t.movedim(dim, 0).reshape(t.shape[dim], -1)


def reduce_units(x: torch.Tensor, how: str) -> torch.Tensor:
    """One score per row of ``x`` (a unit's elementwise scores): sum, l2, mean, max or first."""
    if how == "sum":
        return x.sum(1)
    if how == "l2":
        return x.norm(dim=1)
    if how == "mean":
        return x.mean(1)
    if how == "max":
        return x.amax(1)
    if how == "first":  # one draw per unit, e.g. random scores, unbiased by the unit's size
        return x[:, 0]
    raise ValueError(f"unknown reduction {how!r}")


class Score(ABC):
    """Importance (higher = more important) of single weights, or of slices of a weight. Never thresholds.

    A new score is one class and one ``@pk.scores.register("name")`` line; it then works for every
    structure. Define ``__call__(weight, context)`` (elementwise scores, shaped like ``weight``):
    a structure's unit is scored by reducing its entries with ``reduce`` ("sum", "l2", "mean",
    "max" or "first"). A score that only makes sense per slice (FPGM, BatchNorm scale) defines
    ``slices(weight, dim, context)`` instead: one score per index of ``dim`` (NaN = no opinion), and
    cannot rank single weights. ``units(count, seed)`` may score whole units directly (random).

    ``prepare`` runs once per ``prune`` call, before any scoring, and returns state handed to every
    call (gradients, for example). An ``elementwise`` score is called on blocks of rows
    (``context.rows``) to bound memory; set it False for a score that must see the whole tensor.
    What a score needs is declared for the harness and the CLI to read: ``needs_data`` (batches
    ``data=``), ``needs_loss`` (it differentiates ``loss_fn``, by default the training loss,
    :func:`prunekit.losses.cross_entropy`),
    ``needs_example_inputs``, ``needs_calibration`` (``data=`` are model inputs whose per-layer
    statistics the score collects, see :mod:`prunekit.calibration`; labels are optional). A
    ``pointwise`` score (|w|) may be called on any gathered entries, which lets exact selection
    bracket its threshold from a sample without a full scoring pass.
    A ``needs_example_inputs`` score given no ``data=`` receives the example inputs as ``data`` in ``prepare``;
    a ``data_free`` one (SynFlow) receives them even when ``data=`` is given, which it ignores like magnitude does.
    ``rounds`` > 1 asks the engine to prune in that many rounds to exponentially growing sparsities,
    rescoring after each (SynFlow; see :mod:`prunekit.iterative`).
    """

    reduce = "sum"
    needs_data = False
    needs_loss = False
    needs_example_inputs = False
    needs_calibration = False
    data_free = False  # reads only the example inputs, never data= (SynFlow's all-ones input)
    rounds = 1  # prune-and-rescore rounds within one prune call (no training between them)
    elementwise = True  # scores of a row block depend only on that block: scored in chunks
    pointwise = False  # an entry's score depends only on its own value: a sample of entries scores alone

    def plan(self, parts: list, structure: Any, scope: Any, sparsity: float | None) -> None:
        """Runs before ``prepare`` with what will be selected: for a score that also prunes (SparseGPT)."""

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return None

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        raise UnsupportedLayerError(
            f"score {getattr(self, 'name', type(self).__name__)!r} ranks whole units, not single weights; "
            "use it with structure='neurons', 'channels' or 'heads'"
        )

    @classmethod
    def ranks_weights(cls) -> bool:
        """Whether this score ranks single weights (defines ``__call__``), so that it fits structure='weights' or N:M."""
        return cls.__call__ is not Score.__call__

    def slices(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        """One score per index of ``dim`` of ``weight``: its elementwise scores reduced by ``reduce``."""
        return reduce_units(by_slice(self(weight, context), dim), self.reduce)

    def units(self, count: int, seed: int) -> torch.Tensor | None:
        """One score per unit, bypassing the slices; None (the default) means score the slices."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


registry: Registry[Score] = Registry("score", Score)
register = registry.register
