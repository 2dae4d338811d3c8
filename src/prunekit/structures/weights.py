"""Single weights as units: unstructured pruning."""
from __future__ import annotations

import torch
from torch import nn

from .base import TensorStructure, register


@register("weights")
class Weights(TensorStructure):
    """Every single weight is a unit (unstructured pruning)."""

    units_are_entries = True

    def num_units(self, module: nn.Module, pname: str) -> int:
        return getattr(module, pname).numel()

    def to_units(self, scores: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
        return scores.reshape(-1)

    def unit_mask(self, mask: torch.Tensor, module: nn.Module) -> torch.Tensor:
        return mask.reshape(-1)

    def masks(self, keep: torch.Tensor, module: nn.Module, pname: str) -> dict[str, torch.Tensor]:
        return {pname: keep.reshape(getattr(module, pname).shape)}
