"""Label rules for pointwise, reduction and shape operations (layers live in ``layers``).

A rule reads the labels of the inputs, couples (union), locks or reshapes them like the real op
did, and sets the labels of the outputs. Anything a rule cannot prove safe is locked or refused.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .. import sizes
from . import perhead
from .reshape import AS_SHAPE_OF, RESHAPE, reshape_groups, shape_of, split_units
from ..core import aligned, varying
from .registry import rule

if TYPE_CHECKING:
    from ..trace import Tracer

POINTWISE = (
    "add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__", "__isub__",
    "mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__", "__rtruediv__",
    "__itruediv__", "true_divide", "maximum", "minimum", "where", "relu", "relu_", "gelu", "silu", "sigmoid",
    "tanh", "dropout", "dropout_", "hardtanh", "hardtanh_", "relu6", "leaky_relu", "leaky_relu_", "elu",
    "selu", "celu", "hardswish", "hardsigmoid", "softplus", "mish", "neg", "__neg__", "abs", "exp", "log",
    "sqrt", "rsqrt", "pow", "__pow__", "clone", "contiguous", "detach", "to", "float", "half", "double",
    "bfloat16", "type", "type_as", "clamp", "clamp_", "clamp_min", "clamp_max", "square", "erf", "tanh_",
    "sigmoid_", "masked_fill", "masked_fill_", "reciprocal", "sin", "cos", "alpha_dropout", "feature_alpha_dropout",
    "dropout1d", "dropout2d", "dropout3d", "fill_", "zero_", "copy_", "cpu", "cuda", "eq", "__eq__", "ne",
    "__ne__", "gt", "__gt__", "lt", "__lt__", "ge", "__ge__", "le", "__le__", "isnan", "isinf", "isfinite",
    "logical_not", "__invert__", "__and__", "__or__", "logical_and", "logical_or", "sign", "floor", "ceil", "round",
)
LIKE = ("zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like")
FRESH = ("new_zeros", "new_ones", "new_empty", "new_full", "new_tensor")
SHAPE = ("view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "squeeze", "unsqueeze",
         "expand", "expand_as", "movedim", "moveaxis", "swapaxes", "view_as", "reshape_as", "__getitem__",
         "narrow", "select")
SPLIT = ("split", "chunk", "unbind", "tensor_split", "split_with_sizes")
REDUCE = ("sum", "mean", "amax", "amin", "max", "min", "var", "std", "norm", "logsumexp", "prod", "argmax",
          "argmin", "softmax", "log_softmax", "_softmax", "cumsum", "var_mean", "std_mean")
HEAD_ATTRS = ("num_heads", "n_head", "n_heads", "num_attention_heads", "nhead", "heads", "split_size",
              "all_head_size", "inner_dim", "num_key_value_heads")


def outputs(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for t in (out if isinstance(out, (tuple, list)) else ()) if isinstance(t, torch.Tensor)]


@rule(*POINTWISE)
def pointwise(tr: Tracer, func, args, kwargs, out) -> None:
    """Elementwise ops couple every tracked operand; parameters broadcast over channels follow them."""
    res = outputs(out)[0]
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    labels = None
    for t in tensors:
        lab = tr.get(t)
        if lab is not None:
            lab = aligned(lab, res.dim())
            if labels is not None:
                tr.graph.union(labels, lab)
            labels = lab if labels is None or labels.numel() < lab.numel() else labels
    for t in tensors:
        if tr.get(t) is None and t.numel() > 1:
            _follow(tr, t, labels, res.dim())
    tr.set(res, labels)


def _follow(tr: Tracer, t: torch.Tensor, labels: torch.Tensor, ndim: int) -> None:
    """An untracked operand that spans labelled dims: a parameter follows them, anything else locks."""
    offset = ndim - t.dim()
    spans = [d for d in varying(labels) if d >= offset and t.shape[d - offset] > 1]
    if not spans:
        return
    owner = tr.param(t)
    if owner is None or len(spans) > 1 or len(varying(labels)) > 1:
        tr.graph.lock(labels, "an untraced tensor (a buffer or a constant) spans these channels")
        return
    d = spans[0]
    tr.graph.bind(owner[0], owner[1], d - offset, labels.movedim(d, 0).reshape(labels.shape[d], -1)[:, 0])


def _dims(arg, ndim: int) -> list[int]:
    if arg is None:
        return list(range(ndim))
    arg = [arg] if isinstance(arg, int) else list(arg)
    return [a % ndim for a in arg]


@rule(*REDUCE)
def reduce(tr: Tracer, func, args, kwargs, out) -> None:
    """Reductions over labelled dims mix channels: sums of zeros are safe, the rest lock them."""
    x = args[0]
    lab = aligned(tr.get(x), x.dim())
    name = func.__name__
    dim = kwargs.get("dim", args[1] if len(args) > 1 and not isinstance(args[1], torch.dtype) else None)
    dims = _dims(dim, x.dim())
    hit = [d for d in dims if lab.shape[d] > 1]
    if hit:
        others = [d for d in varying(lab) if d not in dims]
        if name == "sum" and others:
            for d in hit:
                tr.graph.union(lab, lab.narrow(d, 0, 1))
        else:
            tr.graph.lock(lab)
    res = outputs(out)
    if name in ("softmax", "log_softmax", "_softmax", "cumsum"):
        tr.set(res[0], lab)
        return
    keep = kwargs.get("keepdim", args[2] if len(args) > 2 and isinstance(args[2], bool) else False)
    for d in dims:
        lab = lab.narrow(d, 0, 1)
    if not keep:
        lab = lab.squeeze(tuple(dims)) if dims else lab
    for r in res:
        if r.dim() == lab.dim() and r.is_floating_point() and lab.numel() > 1:
            tr.set(r, lab)


@rule(*SHAPE)
def shape(tr: Tracer, func, args, kwargs, out) -> None:
    """View-like ops: apply the same op to the labels; splitting a labelled dim makes head units."""
    x = args[0]
    name = func.__name__
    if name in AS_SHAPE_OF:
        return shape_of(tr, func, args, out)
    if tr.get(x) is None:  # e.g. a parameter table indexed by a buffer
        if name == "__getitem__":
            perhead.table_rows(tr, x, out)
        return
    if any(tr.get(a) is not None for a in _flat(args[1:])):
        tr.fail(name, "a tracked tensor is used as an index")
    full = tr.full(x)
    if name == "view" and not (len(args) == 2 and isinstance(args[1], torch.dtype)):
        func = torch.Tensor.reshape  # labels are ids: an expanded label tensor may not be viewable
    new = func(full, *[tr.full(a) if tr.get(a) is not None else a for a in args[1:]], **kwargs)
    before = tr.graph.canonical(full)
    lost = set(before.unique().tolist()) - set(tr.graph.roots(new).unique().tolist())
    if lost:  # a slice over channels: its bounds are code constants, so these channels stay
        tr.graph.lock(before)
    after = tr.graph.canonical(new)
    split = False
    if name in RESHAPE:
        told = {d: size for _, d, size in sizes.sized_dims(name, args, kwargs, [out])}
        for ins, outs in reshape_groups(tuple(x.shape), tuple(out.shape)):
            if len(outs) > 1 and any(before.shape[i] > 1 for i in ins):
                for d in split_units(outs, told, after):
                    tr.graph.union(after, after.narrow(d, 0, 1))
                split = True
        after = tr.graph.canonical(after)
    tr.set(out, after)
    _record_attrs(tr, args[1:], tr.get(out), heads=split)
    sizes.record(tr, name, args, kwargs, [out])


@rule(*SPLIT)
def split(tr: Tracer, func, args, kwargs, out) -> None:
    """Split/chunk a labelled dim into equal pieces: piece i channel j couples to piece 0 channel j."""
    x = args[0]
    pieces = func(tr.full(x), *args[1:], **kwargs)
    labs = [tr.graph.canonical(p) for p in pieces]
    if len({tuple(p.shape) for p in pieces}) > 1:
        if any(varying(l) for l in labs):
            tr.graph.lock(tr.get(x))
    else:
        for l in labs[1:]:
            tr.graph.union(labs[0], l)
    for o, l in zip(out, labs):
        tr.set(o, l)
    _record_attrs(tr, args[1:], tr.get(out[0]))
    sizes.record(tr, func.__name__, args, kwargs, list(out))


def _flat(items) -> list:
    res = []
    for a in items:
        res.extend(_flat(a) if isinstance(a, (tuple, list)) else [a])
    return res


def _record_attrs(tr: Tracer, args, labels: torch.Tensor | None, heads: bool = False) -> None:
    """Remember module attributes (head counts, split sizes) that a shape op used as a size.

    After a split into heads, an attribute equal to the head count is recorded even when the
    code passed ``-1`` for it (GPT-2 does), so the compact module's ``num_heads`` stays true.
    """
    if labels is None:
        return
    ints = {a for a in _flat(args) if isinstance(a, int)}
    if heads:
        ints.update(labels.shape[d] for d in varying(labels))
    module = tr.graph.modules.get(tr.stack[-1])
    for d in varying(labels):
        n = labels.shape[d]
        for attr in HEAD_ATTRS:
            if n in ints and getattr(module, attr, None) == n:
                vec = labels.movedim(d, 0).reshape(n, -1)[:, 0]
                tr.graph.attrs.append((tr.stack[-1], attr, vec))


@rule("cat", "concat", "concatenate")
def cat(tr: Tracer, func, args, kwargs, out) -> None:
    """Concatenation along channels keeps each part's labels (constants are locked parts)."""
    tensors = [t for t in args[0] if t.numel() or tr.get(t) is not None]  # empty caches add nothing
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % out.dim()
    labs = [tr.get(t) for t in tensors]
    if any(l is not None and aligned(l, out.dim()).shape[dim] > 1 for l in labs):
        parts = [tr.full(t) if l is not None else tr.graph.new(t.numel(), locked=True).reshape(t.shape)
                 for t, l in zip(tensors, labs)]
        tr.set(out, torch.cat(parts, dim))
        return
    tracked = [aligned(l, out.dim()) for l in labs if l is not None]
    for l in tracked[1:]:
        tr.graph.union(tracked[0], l)
    if len(tracked) < len(tensors):
        tr.graph.lock(tracked[0])
    tr.set(out, tracked[0])


@rule(*LIKE)
def like(tr: Tracer, func, args, kwargs, out) -> None:
    """``zeros_like(x)`` and friends take x's (compacted) shape, so they follow x's channels."""
    tr.set(out, tr.get(args[0]))


@rule(*FRESH)
def fresh(tr: Tracer, func, args, kwargs, out) -> None:
    """Tensors made with an explicit size carry no channels."""


@rule("stack")
def stack(tr: Tracer, func, args, kwargs, out) -> None:
    """Stacking couples the inputs position by position (an untracked input locks them)."""
    tensors = list(args[0])
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % out.dim()
    labs = [tr.get(t) for t in tensors]
    tracked = [aligned(l, out.dim() - 1) for l in labs if l is not None]
    for l in tracked[1:]:
        tr.graph.union(tracked[0], l)
    if len(tracked) < len(tensors):
        tr.graph.lock(tracked[0])
    tr.set(out, tracked[0].unsqueeze(dim))


@rule("pad")
def pad(tr: Tracer, func, args, kwargs, out) -> None:
    """Constant padding of a labelled dim adds locked (always kept) channels on either side."""
    x, amounts = args[0], list(args[1] if len(args) > 1 else kwargs["pad"])
    lab = aligned(tr.get(x), x.dim())
    for i in range(0, len(amounts), 2):
        d = x.dim() - 1 - i // 2
        left, right = amounts[i], amounts[i + 1]
        if lab.shape[d] == 1 or (left == 0 and right == 0):
            continue
        if left < 0 or right < 0:
            tr.graph.lock(lab)
            continue
        shp = list(lab.shape)
        blocks = []
        for n in (left, right):
            shp[d] = n
            blocks.append(tr.graph.new(int(torch.Size(shp).numel()), locked=True).reshape(shp))
        lab = torch.cat([blocks[0], lab, blocks[1]], d)
    tr.set(out, lab)
