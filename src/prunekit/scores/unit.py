"""Scores that rank whole units, not single weights: BatchNorm scale and FPGM."""
from __future__ import annotations

import torch
from torch import nn

from .base import Score, ScoreContext, by_slice, register

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@register("bn-scale")
class BNScale(Score):
    """|γ| of the BatchNorm that follows the channel (network slimming, Liu et al. 2017); no opinion elsewhere."""

    def slices(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        gamma = isinstance(context.target.module, _BN) and context.target.pname == "weight"
        return weight.detach().abs() if gamma else torch.full((weight.shape[dim],), float("nan"))


@register("fpgm")
class FPGM(Score):
    """Distance of each filter to all others (He et al. 2019): filters near the geometric median are redundant."""

    elementwise = False  # distances compare every slice with every other

    def slices(self, weight: torch.Tensor, dim: int, context: ScoreContext) -> torch.Tensor:
        if weight.dim() < 2:
            return torch.full((weight.shape[dim],), float("nan"))
        s = by_slice(weight.detach(), dim)
        return torch.cdist(s[None], s[None])[0].sum(1)
