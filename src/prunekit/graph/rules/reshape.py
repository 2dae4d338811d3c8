"""Reshapes of labelled dims: which dims a reshape splits or merges, how a split channel dim is cut into
units, and ``view_as``-style ops that take another tensor's shape (used by the shape rule in ``ops``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .. import sizes
from ..core import aligned, varying

if TYPE_CHECKING:
    from ..trace import Tracer


AS_SHAPE_OF = ("view_as", "reshape_as", "expand_as")


def shape_of(tr: Tracer, func, args, out) -> None:
    """``x.view_as(y)`` and friends: the output takes y's shape, so its positions follow y's channels.

    Each output position couples to y's element at the same position (y's size decides the shape after
    compaction); an untracked x whose fixed size spans y's channels locks them.
    """
    x, y = args[0], args[1]
    ly = tr.get(y)
    if tr.get(x) is None:
        if ly is not None and (func.__name__ != "expand_as" or any(
                x.dim() + d - y.dim() >= 0 and x.shape[x.dim() + d - y.dim()] > 1 for d in varying(aligned(ly, y.dim())))):
            tr.graph.lock(ly)
        return
    like = torch.Tensor.expand if func.__name__ == "expand_as" else torch.Tensor.reshape
    labels = like(tr.full(x), y.shape)
    if ly is not None:
        tr.graph.union(labels, aligned(ly, y.dim()))
    tr.set(out, tr.graph.canonical(labels))


RESHAPE = ("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as")


def split_units(outs: list[int], told: dict, labels: torch.Tensor) -> list[int]:
    """The dims of a split channel dim along which one unit must span every index.

    A dim sized by a plain number (not an attribute, not -1) keeps its count after compaction, so
    units span it. Otherwise the last dim is spanned, e.g. (B, T, E) -> (B, T, H, hd) or (B, T, 3, H, hd):
    a head is one unit and the head count (an attribute or -1) shrinks. When every outer dim is a
    number, as in a channel shuffle ``view(B, 3, C // 3, H, W)``, the inner dim shrinks instead, so the
    shuffle stays a permutation: position j of every group is one unit. So it does when the channels
    already are (a grouped conv's output).
    """
    def fixed(d: int) -> bool:
        size = told.get(d)
        return size is not None and not isinstance(size, sizes.Size) and size != -1

    outer = [d for d in outs[:-1] if fixed(d)]
    shared = labels.shape[outs[-1]] > 1 and any(labels.shape[d] == 1 for d in outs[:-1])
    if (len(outer) < len(outs) - 1 and not shared) or fixed(outs[-1]):
        outer.append(outs[-1])
    return outer


def reshape_groups(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Which dims of shape ``a`` become which dims of shape ``b`` under a contiguous reshape."""
    res, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        ia, jb = ([i] if i < len(a) else []), ([j] if j < len(b) else [])
        pa, pb = (a[i] if i < len(a) else 1), (b[j] if j < len(b) else 1)
        i, j = i + 1, j + 1
        while pa != pb and pa and pb:
            if (pa < pb and i < len(a)) or j >= len(b):
                ia.append(i)
                pa, i = pa * a[i], i + 1
            else:
                jb.append(j)
                pb, j = pb * b[j], j + 1
        res.append((ia, jb))
    return res
