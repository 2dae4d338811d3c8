"""N:M structure: keep the N highest-scoring weights in every block of M consecutive input weights.

Blocks run along the input (reduction) axis of a layer, the layout sparse tensor cores expect: the
last axis of a ``Linear`` weight, the input channels of a convolution (blocks of M input channels at
one kernel position), axis 0 of a transposed convolution. The sparsity is fixed at ``1 - N/M`` and
selection is local to each block, so N:M has its own selection here instead of a global/layer scope.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InvalidSparsityError, PruneError, UnsupportedLayerError
from ..masks import Masks, attach, mask_of
from ..scope import Global, Layer, Scope
from ..scores import Score, ScoreContext, Target
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

    @staticmethod
    def input_axis(module: nn.Module) -> int:
        """The axis of the weight that a layer reduces over (its input features or channels)."""
        return 0 if isinstance(module, TRANSPOSED) else 1

    def check(self, module: nn.Module, pname: str) -> None:
        weight = getattr(module, pname)
        axis = self.input_axis(module)
        if weight.dim() < 2 or weight.shape[axis] % self.m:
            size = weight.shape[axis] if weight.dim() >= 2 else weight.numel()
            raise UnsupportedLayerError(
                f"structure {self.name!r} needs the input size of {type(module).__name__} to be a multiple "
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

    def keep(self, scores: torch.Tensor, module: nn.Module) -> torch.Tensor:
        """Boolean mask keeping the N highest scores of each block; at equal score the lower index goes."""
        rows = self.blocks(scores.float(), module)
        order = rows.argsort(dim=1, stable=True)  # ascending: the first M - N of each block are dropped
        keep = torch.ones_like(rows, dtype=torch.bool)
        keep.scatter_(1, order[:, : self.m - self.n], False)
        return self.unblock(keep, module, scores.shape)

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


def prune_nm(
    model: nn.Module,
    nm: NM,
    targets: list[Target],
    sparsity: float | None,
    compression: float | None,
    score: Score,
    scope: Scope,
    data: Any,
    loss_fn: Callable | None,
    seed: int,
) -> Masks:
    """``pk.prune`` for an N:M structure on checked ``targets``: exactly N kept in every block of M."""
    if compression is not None:
        raise InvalidSparsityError(f"structure {nm.name!r} fixes sparsity at {nm.sparsity:g}; omit compression")
    if sparsity is not None and not math.isclose(sparsity, nm.sparsity, abs_tol=1e-9):
        raise InvalidSparsityError(
            f"structure {nm.name!r} prunes exactly {nm.sparsity:g} (1 - N/M); omit sparsity or pass {nm.sparsity:g}"
        )
    if not isinstance(scope, (Global, Layer)):
        raise PruneError(f"structure {nm.name!r} selects within each block of {nm.m}; omit scope")
    state = score.prepare(model, targets, data, loss_fn)
    keeps = []
    for i, t in enumerate(targets):
        with torch.no_grad():
            s = score(t.param, ScoreContext(t, i, seed, state)).float()
            old = mask_of(t.module, t.pname)
            if old is not None:  # masks are monotone: what is pruned stays pruned, and goes first
                if (nm.blocks(old, t.module).sum(1) < nm.n).any():
                    raise InvalidSparsityError(
                        f"{t.qname} already has blocks with fewer than {nm.n} of {nm.m} weights kept; "
                        "call pk.unprune(model) first to start over"
                    )
                s = s.masked_fill(old.logical_not(), -math.inf)
            keeps.append(nm.keep(s, t.module).to(t.param.device))
    for t, keep in zip(targets, keeps):
        attach(t.module, t.pname, keep)
    return Masks.from_model(model)
