"""Random scores: the control every method must beat (seeded, so reproducible)."""
from __future__ import annotations

import torch

from .base import Score, ScoreContext, register


@register("random")
class Random(Score):
    """Uniform random importance, one independent stream per tensor and row block, from the seed."""

    reduce = "first"  # one draw per unit, unbiased by the unit's size

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        start = context.rows.start or 0
        gen = torch.Generator().manual_seed((context.seed * 1_000_003 + context.index) * 1_000_033 + start)
        return torch.rand(weight.shape, generator=gen).to(weight.device)

    def units(self, count: int, seed: int) -> torch.Tensor:
        return torch.rand(count, generator=torch.Generator().manual_seed(seed))
