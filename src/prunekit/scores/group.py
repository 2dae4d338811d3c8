"""Group scores for structured pruning: one number per slice of a parameter along the pruned dim.

A channel, neuron or head owns several slices (producer rows, norm entries, consumer columns);
``prunekit.graph`` scores each slice here and reduces them over the unit (sum/mean/max). A new group
score is one class with ``__call__(weight, dim, context)`` and one ``@register_group("name")`` line.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import nn

from ..registry import Registry
from .base import ScoreContext, Target
from .gradient import accumulate_gradients

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def slices(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` as one row per index of ``dim``: shape (t.shape[dim], rest)."""
    return t.movedim(dim, 0).reshape(t.shape[dim], -1)


class GroupScore(ABC):
    """Importance of each slice of ``weight`` along ``dim`` (higher = more important; NaN = no opinion).

    ``prepare`` runs once per ``prune`` call and returns state for every call (gradients, for example).
    A score that ranks whole units directly (random) overrides ``units`` instead.
    """

    needs_data = False

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Callable | None) -> Any:
        return None

    @abstractmethod
    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        ...

    def units(self, count: int, seed: int) -> torch.Tensor | None:
        """One score per unit, bypassing the slices; None (the default) means score the slices."""
        return None


group_registry: Registry[GroupScore] = Registry("group score", GroupScore)
register_group = group_registry.register


@register_group("l1")
class L1(GroupScore):
    """Sum of |w| over the slice (Li et al. 2017, filter pruning)."""

    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        return slices(weight, dim).abs().sum(1)


@register_group("l2")
class L2(GroupScore):
    """L2 norm of the slice; the default group score."""

    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        return slices(weight, dim).norm(dim=1)


@register_group("magnitude")
class GroupMagnitude(L2):
    """``magnitude`` on a structure means the L2 norm, as for ``structure="neurons"``."""


@register_group("bn-scale")
class BNScale(GroupScore):
    """|γ| of the BatchNorm that follows the channel (network slimming, Liu et al. 2017); NaN elsewhere."""

    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        gamma = isinstance(context.target.module, _BN) and context.target.pname == "weight"
        return weight.abs() if gamma else torch.full((weight.shape[dim],), float("nan"))


@register_group("taylor")
class Taylor(GroupScore):
    """Σ|w·∂L/∂w| over the slice (Molchanov et al. 2019); needs ``data``."""

    needs_data = True

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Callable | None) -> Any:
        return accumulate_gradients(model, targets, data, loss_fn)

    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        grad = context.state[context.target.qname]
        return slices(weight * grad, dim).abs().sum(1)


@register_group("gradient")
class GroupGradient(Taylor):
    """``gradient`` on a structure means first-order Taylor over the unit."""


@register_group("fpgm")
class FPGM(GroupScore):
    """Distance of each filter to all others (He et al. 2019): filters near the geometric median are redundant."""

    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        if weight.dim() < 2:
            return torch.full((weight.shape[dim],), float("nan"))
        s = slices(weight, dim)
        return torch.cdist(s[None], s[None])[0].sum(1)


@register_group("random")
class GroupRandom(GroupScore):
    """Seeded uniform draws. Ranking units, it draws once per unit (``units``), so a unit's size does
    not bias it; called on a tensor, it draws once per slice."""

    def __call__(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        gen = torch.Generator().manual_seed(context.seed * 1_000_003 + context.index)
        return torch.rand(weight.shape[dim], generator=gen)

    def units(self, count: int, seed: int) -> torch.Tensor:
        return torch.rand(count, generator=torch.Generator().manual_seed(seed))
