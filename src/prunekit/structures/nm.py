"""N:M structure: keep the N highest-scoring weights in every block of M consecutive input weights.

Blocks run along the input (reduction) axis of a layer, the layout sparse tensor cores expect: the
last axis of a ``Linear`` weight, the input channels of a convolution (blocks of M input channels at
one kernel position), axis 0 of a transposed convolution. The sparsity is fixed at ``1 - N/M`` and
selection is local to each block: the structure orders a weight's units block by block and requires
the block-local scope (:class:`prunekit.scope.BlockLocal`).
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrize import ParametrizationList

from ..errors import InvalidSparsityError, UnsupportedLayerError
from ..scope import BlockLocal
from .base import TRANSPOSED, register
from .weights import Weights

_SPEC = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


class NM(Weights):
    """N kept in every block of M consecutive input weights (2:4: NVIDIA sparse tensor cores)."""

    def __init__(self, n: int = 2, m: int = 4):
        if not 0 < n < m:
            raise InvalidSparsityError(f"N:M needs 0 < N < M (got {n}:{m}); for example '2:4' or '4:8'")
        self.n, self.m = int(n), int(m)
        self.name = f"{self.n}:{self.m}"

    @property
    def sparsity(self) -> float:
        """The fraction every block loses: ``1 - N/M``."""
        return 1.0 - self.n / self.m

    @property
    def scope(self) -> BlockLocal:
        """Selection is local to each block of M."""
        return BlockLocal(self.n, self.m)

    def rows_are_units_in_order(self, module: nn.Module) -> bool:
        return False  # units run block by block along the input axis: scored whole

    def to_units(self, scores: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
        return self.blocks(scores, module).reshape(-1)

    def unit_mask(self, mask: torch.Tensor, module: nn.Module) -> torch.Tensor:
        return self.blocks(mask, module).reshape(-1)

    def masks(self, keep: torch.Tensor, module: nn.Module, pname: str) -> dict[str, torch.Tensor]:
        weight = getattr(module, pname)
        return {pname: self.unblock(keep.view(-1, self.m), module, weight.shape)}

    @staticmethod
    def input_axis(module: nn.Module) -> int:
        """The axis of the weight that a layer reduces over (its input features or channels)."""
        return 0 if isinstance(module, TRANSPOSED) else 1

    def check(self, module: nn.Module, pname: str) -> None:
        weight = getattr(module, pname)
        axis = self.input_axis(module)
        if weight.dim() < 2 or weight.shape[axis] % self.m:
            size = weight.shape[axis] if weight.dim() >= 2 else weight.numel()
            kind = "a parametrized weight" if isinstance(module, ParametrizationList) else type(module).__name__
            raise UnsupportedLayerError(
                f"structure {self.name!r} needs the input size of {kind} to be a multiple "
                f"of {self.m} (it is {size}); exclude that layer with exclude=[...]"
            )

    def blocks(self, x: torch.Tensor, module: nn.Module) -> torch.Tensor:
        """``x`` (shaped like the weight) as rows of M consecutive input weights."""
        return x.movedim(self.input_axis(module), -1).reshape(-1, self.m)

    def unblock(self, rows: torch.Tensor, module: nn.Module, shape: torch.Size) -> torch.Tensor:
        """Inverse of :meth:`blocks`."""
        axis = self.input_axis(module)
        moved = list(shape)
        moved.append(moved.pop(axis))
        return rows.reshape(moved).movedim(-1, axis)

    def holds(self, mask: torch.Tensor, module: nn.Module) -> bool:
        """Whether every block of ``mask`` keeps at most N entries (the N:M pattern)."""
        return bool((self.blocks(mask, module).sum(1) <= self.n).all())


def _named(n: int, m: int) -> type:
    class Named(NM):
        __doc__ = f"{n}:{m} sparsity (registered name of :class:`NM` with N={n}, M={m})."

        def __init__(self) -> None:
            super().__init__(n, m)

    Named.__name__ = Named.__qualname__ = f"NM{n}x{m}"
    return Named


for _n, _m in ((1, 2), (2, 4), (1, 4), (4, 8), (2, 8)):
    register(f"{_n}:{_m}")(_named(_n, _m))


def parse(spec: Any) -> NM | None:
    """An :class:`NM` for ``"N:M"`` strings and NM objects, None for any other structure spec."""
    if isinstance(spec, NM):
        return spec
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    return NM(int(match[1]), int(match[2])) if match else None
