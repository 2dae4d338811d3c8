"""Magnitude |w| (Han et al. 2015); per unit, the L2 norm of the unit's weights."""
from __future__ import annotations

import torch

from .base import Score, ScoreContext, register


@register("magnitude")
class Magnitude(Score):
    """|w| — Han et al. 2015."""

    reduce = "l2"

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return weight.detach().abs()
