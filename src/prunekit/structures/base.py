"""The Structure interface: how a parameter is cut into prunable units, and the structure registry."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from ..registry import Registry

CHUNK = 1 << 18  # entries scored at once: bounds the temporaries of pruning huge tensors
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class Structure(ABC):
    """Maps a parameter to a 1-D vector of units and back. Subclasses define the unit."""

    name = "structure"

    def check(self, module: nn.Module, pname: str) -> None:
        """Raise :class:`UnsupportedLayerError` when the parameter cannot be cut this way."""

    def row_chunks(self, module: nn.Module, pname: str, chunked: bool = True) -> list[slice]:
        """Blocks of rows (dim 0) whose unit scores are consecutive in unit order, ~256 K entries each."""
        param = getattr(module, pname)
        if not chunked or param.dim() == 0 or not self.rows_are_units_in_order(module):
            return [slice(None)]
        step = max(1, CHUNK // max(1, param[0].numel()))
        return [slice(i, i + step) for i in range(0, param.shape[0], step)]

    def rows_are_units_in_order(self, module: nn.Module) -> bool:
        """Whether a block of rows holds a consecutive run of units (True for row-major units)."""
        return True

    @abstractmethod
    def num_units(self, module: nn.Module, pname: str) -> int:
        ...

    @abstractmethod
    def unit_scores(self, scores: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
        """Reduce elementwise scores (shaped like the parameter) to one score per unit."""
        ...

    @abstractmethod
    def unit_mask(self, mask: torch.Tensor, module: nn.Module) -> torch.Tensor:
        """Which units an existing elementwise mask still keeps (a unit is kept if any entry is)."""
        ...

    @abstractmethod
    def masks(self, keep: torch.Tensor, module: nn.Module, pname: str) -> dict[str, torch.Tensor]:
        """Elementwise masks for ``pname`` (and any companion parameter) from per-unit ``keep``."""
        ...


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


registry: Registry[Structure] = Registry("structure", Structure)
register = registry.register
