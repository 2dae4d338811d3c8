"""Per-head tensors that are not a layer's weights: position-bias tables, biases added to the scores, constants.

A Swin relative-position table ``table[relative_position_index]`` holds one column per head; a bias
handed to ``scaled_dot_product_attention`` as ``attn_mask`` (T5 computes one and shares it across
layers) is added to every head's scores. Their columns follow the heads they are added to, so a
pruned head takes its column with it, and heads that share one bias are pruned together.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .. import sizes
from ..core import aligned, varying
from .registry import rule

if TYPE_CHECKING:
    from ..trace import Tracer


def table_rows(tr: Tracer, x: torch.Tensor, out) -> None:
    """``table[index]`` on a 2-D parameter: rows picked by a buffer, one column per channel or head.

    The columns get fresh labels that are kept (like an embedding's) unless they meet heads.
    """
    owner = tr.param(x)
    if owner is None or x.dim() != 2 or not isinstance(out, torch.Tensor) or out.dim() < 1 \
            or out.shape[-1] != x.shape[1] or x.shape[1] < 2:
        return
    labels = tr.graph.new(x.shape[1], interface=True)
    tr.graph.bind(owner[0], owner[1], 1, labels)
    tr.set(out, labels.reshape((1,) * (out.dim() - 1) + (-1,)))


def attn_mask(tr: Tracer, mask, scores: torch.Tensor) -> None:
    """A float ``attn_mask`` is added to the scores: its head axis couples to theirs.

    A bias that is not traced (a constant or a boolean mask) and varies across heads locks them.
    """
    lab = tr.get(scores)
    if not isinstance(mask, torch.Tensor) or lab is None:
        return
    lab = aligned(lab, scores.dim())
    mine = tr.get(mask)
    if mine is not None:
        tr.graph.union(lab, aligned(mine, scores.dim()))
        return
    offset = scores.dim() - mask.dim()
    if any(d >= offset and mask.shape[d - offset] > 1 for d in varying(lab)):
        tr.graph.lock(lab, "attn_mask differs per head but is not computed from traced tensors")


@rule("zeros", "ones", "full")
def constant(tr: Tracer, func, args, kwargs, out) -> None:
    """``torch.zeros(1, self.n_heads, T, S)``: a constant sized by an attribute (T5's cross-attention bias).

    Constant along every dim, it may take any size: the first dim an attribute sized gets fresh labels
    (coupled to whatever it meets, e.g. heads) and an equation, so compaction updates the attribute.
    """
    sizes_ = args[0] if args and isinstance(args[0], (tuple, list, torch.Size)) else args
    if not isinstance(out, torch.Tensor) or len(sizes_) != out.dim():
        return
    for d, n in enumerate(sizes_):
        if isinstance(n, sizes.Size) and n > 1 and sizes.names(n.expr) and not sizes.measures(n.expr):
            shape = [1] * out.dim()
            shape[d] = int(n)
            labels = tr.graph.new(int(n)).reshape(shape)
            tr.set(out, labels)
            tr.graph.sizes.append(sizes.Equation(n.expr, labels.reshape(-1), int(n), func.__name__, tr.here(), d))
            return
