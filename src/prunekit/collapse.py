"""Layer collapse is never silent: a selection that empties a whole layer is refused unless allowed.

A global ranking can remove every weight of a layer (Tanaka et al. 2020, "layer collapse"): a fresh
784-2048-2048-10 MLP at 95 % global magnitude loses its two narrower-initialized layers and its
output no longer depends on its input. The engine calls :func:`check` on the scope's choice before
any mask is attached, so a refused prune leaves the model untouched.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import LayerCollapseError
from .structures import Part


def collapsed(parts: Sequence[Part], keeps: Sequence[torch.Tensor]) -> list[str]:
    """Names of the parts (layers, or coupled channel groups) that would keep none of their units."""
    return [p.name for p, keep in zip(parts, keeps) if p.size > 0 and not bool(keep.view(torch.uint8).amax())]


def check(parts: Sequence[Part], keeps: Sequence[torch.Tensor], allow: bool = False) -> None:
    """Raise :class:`LayerCollapseError` naming every layer the selection would empty, unless ``allow``."""
    if allow:
        return
    gone = collapsed(parts, keeps)
    if gone:
        raise LayerCollapseError(
            f"this selection removes every unit of {', '.join(gone)} (layer collapse: the model's output would "
            "no longer depend on its input through them); lower the sparsity, use scope='layer' or an iterative "
            "score such as 'synflow', or pass allow_collapse=True to prune anyway", gone)
