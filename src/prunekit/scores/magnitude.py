"""Magnitude scores: |w| (Han et al. 2015). Per unit: the L2 norm (``magnitude``, ``l2``) or the L1 norm (``l1``)."""
from __future__ import annotations

import torch

from .base import Score, ScoreContext, register


@register("magnitude")
class Magnitude(Score):
    """|w| — Han et al. 2015; a unit (neuron, channel slice) scores the L2 norm of its weights."""

    reduce = "l2"
    pointwise = True

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return weight.detach().abs()


@register("l2")
class L2(Magnitude):
    """L2 norm of a unit's weights (the name filter-pruning papers use for ``magnitude``)."""


@register("l1")
class L1(Magnitude):
    """Sum of |w| over a unit (Li et al. 2017, filter pruning)."""

    reduce = "sum"
