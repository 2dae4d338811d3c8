"""Label rules for layers: convolutions, linear maps, norms, pooling, matmul and attention products.

A producer (conv/linear output) creates fresh elements; its consumers bind their input dimension to
the incoming labels; norms and per-channel parameters follow; anything channel-mixing locks.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from ..core import MacTerm, varying
from . import perhead
from .registry import rule

if TYPE_CHECKING:
    from ..trace import Tracer


def along(tr: Tracer, x: torch.Tensor, d: int, op: str) -> torch.Tensor | None:
    """The 1-D labels of ``x`` along ``d`` (None if untracked).

    Labels that also vary along other dims (e.g. unflattened features) are merged along those dims
    first: coarser units are always safe.
    """
    lab = tr.get(x)
    if lab is None:
        return None
    lab = lab.reshape((1,) * (x.dim() - lab.dim()) + tuple(lab.shape))
    d = d % x.dim()
    for v in varying(lab):
        if v != d:
            tr.graph.union(lab, lab.narrow(v, 0, 1))
            lab = lab.narrow(v, 0, 1)
    return lab.reshape(-1).expand(x.shape[d]) if lab.shape[d] == 1 else lab.reshape(-1)


def _shape_at(n: int, d: int, ndim: int) -> list[int]:
    shp = [1] * ndim
    shp[d] = n
    return shp


def _computed(tr: Tracer, x, out, dim: int, op: str) -> None:
    """A layer whose weight is computed, not a parameter (weight_norm, spectral_norm): its channels stay."""
    lab = tr.get(x)
    if lab is not None:
        tr.graph.lock(lab)
    n = out.shape[dim]
    tr.set(out, tr.graph.new(n, locked=True).reshape(_shape_at(n, dim, out.dim())))
    warnings.warn(f"layer {tr.here()!r}: its {op} weight is computed (by a parametrization such as weight_norm), "
                  "not a parameter, so its input and output channels are kept", UserWarning, stacklevel=2)


def _owner(tr: Tracer, t, op: str) -> tuple[str, str]:
    owner = tr.param(t)
    if owner is None:
        tr.fail(op, "its weight is not a parameter of a module in the model")
    return owner


@rule("conv1d", "conv2d", "conv3d")
def conv(tr: Tracer, func, args, kwargs, out) -> None:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    op = func.__name__
    if tr.param(w) is None:
        return _computed(tr, x, out, 1, op)
    m, p = _owner(tr, w, op)
    cout, cin = w.shape[0], x.shape[1]
    lab = along(tr, x, 1, op)
    g = tr.graph
    if groups == 1:
        if lab is not None:
            g.bind(m, p, 1, lab)
        out_lab = g.new(cout)
    elif groups == cin == cout:  # depthwise: channel c in -> channel c out
        out_lab = lab if lab is not None else g.new(cout)
    else:  # grouped: groups stay equal, so position j of every group is one unit (inputs and outputs)
        if lab is not None:
            per_group = lab.reshape(groups, -1)
            g.union(per_group, per_group[:1])
            g.bind(m, p, 1, per_group[0])
        out_lab = g.new(cout // groups).repeat(groups)
    g.bind(m, p, 0, out_lab)
    if bias is not None:
        g.bind(*_owner(tr, bias, op), 0, out_lab)
    in_slot = (m, p, 1) if lab is not None and not groups == cin == cout else None
    g.macs.append(MacTerm(out.numel() // cout, (m, p, 0), in_slot, w.shape[1], w[0, 0].numel()))
    tr.set(out, out_lab.reshape(_shape_at(cout, 1, out.dim())))


@rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose(tr: Tracer, func, args, kwargs, out) -> None:
    """Transposed convolutions keep their weight as (in, out/groups, k...); grouped ones lose the same
    positions in every group, as grouped convolutions do."""
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    if tr.param(w) is None:
        return _computed(tr, x, out, 1, func.__name__)
    m, p = _owner(tr, w, func.__name__)
    lab = along(tr, x, 1, func.__name__)
    cout = w.shape[1] * groups
    per_group = tr.graph.new(w.shape[1])
    tr.graph.bind(m, p, 1, per_group)
    out_lab = per_group.repeat(groups)
    if lab is not None:
        tr.graph.union(lab.reshape(groups, -1), lab.reshape(groups, -1)[:1])
        tr.graph.bind(m, p, 0, lab)
    if bias is not None:
        tr.graph.bind(*_owner(tr, bias, func.__name__), 0, out_lab)
    in_slot = (m, p, 0) if lab is not None else None
    tr.graph.macs.append(MacTerm(x.numel() // x.shape[1], (m, p, 1), in_slot, w.shape[0], w[0, 0].numel()))
    tr.set(out, out_lab.reshape(_shape_at(cout, 1, out.dim())))


def _dense(tr: Tracer, x, w, bias, in_dim: int, out_dim: int, op: str) -> tuple[torch.Tensor, bool]:
    """A weight that maps input channels (``in_dim`` of w) to fresh output channels (``out_dim``)."""
    m, p = _owner(tr, w, op)
    lab = along(tr, x, -1, op)
    if lab is not None:
        tr.graph.bind(m, p, in_dim, lab)
    out_lab = tr.graph.new(w.shape[out_dim])
    tr.graph.bind(m, p, out_dim, out_lab)
    if tr.param(bias) is not None and bias.dim() == 1:
        tr.graph.bind(*tr.param(bias), 0, out_lab)
    return out_lab, lab is not None


@rule("linear")
def linear(tr: Tracer, func, args, kwargs, out) -> None:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    if tr.param(w) is None:
        return _computed(tr, x, out, -1, "linear")
    out_lab, tracked = _dense(tr, x, w, bias, 1, 0, "linear")
    m, p = tr.param(w)
    in_slot = (m, p, 1) if tracked else None
    tr.graph.macs.append(MacTerm(out.numel() // w.shape[0], (m, p, 0), in_slot, w.shape[1], 1))
    tr.set(out, out_lab.reshape(_shape_at(w.shape[0], -1, out.dim())))


@rule("embedding")
def embedding(tr: Tracer, func, args, kwargs, out) -> None:
    """Embeddings are kept whole (their width is the model's interface) unless each column is a head's
    (T5's relative-position bias): then a column goes with its head."""
    w = args[1] if len(args) > 1 else kwargs["weight"]
    m, p = _owner(tr, w, "embedding")
    out_lab = tr.graph.new(w.shape[1], interface=True)
    tr.graph.bind(m, p, 1, out_lab)
    tr.set(out, out_lab.reshape(_shape_at(w.shape[1], -1, out.dim())))


@rule("addmm")
def addmm(tr: Tracer, func, args, kwargs, out) -> None:
    """``bias + x @ W`` with W a parameter (GPT-2's Conv1D): a linear map with a transposed weight."""
    bias, x, w = args[0], args[1], args[2]
    if tr.param(w) is None:
        return matmul(tr, func, (x, w), {}, out)
    out_lab, tracked = _dense(tr, x, w, bias, 0, 1, "addmm")
    m, p = tr.param(w)
    tr.graph.macs.append(MacTerm(out.numel() // w.shape[1], (m, p, 1), (m, p, 0) if tracked else None, w.shape[0], 1))
    tr.set(out, out_lab.reshape(1, -1))


@rule("matmul", "__matmul__", "mm", "bmm", "baddbmm")
def matmul(tr: Tracer, func, args, kwargs, out) -> None:
    """Products of activations: contracted channels pair up, batch dims (heads) couple elementwise."""
    a, b = (args[1], args[2]) if func.__name__ == "baddbmm" else (args[0], args[1])
    if tr.param(b) is not None or tr.param(a) is not None or a.dim() < 2 or b.dim() < 2:
        tr.fail(func.__name__, "a product with a bare parameter or a vector is not supported")
    tr.set(out, product_labels(tr, a, b, out, func.__name__))


def product_labels(tr: Tracer, a, b, out, op: str) -> torch.Tensor | None:
    """Labels of ``a @ b`` from those of ``a`` and ``b`` (either may be untracked)."""
    g, nd = tr.graph, out.dim()
    la, lb = tr.get(a), tr.get(b)
    la = None if la is None else la.reshape((1,) * (nd - la.dim()) + tuple(la.shape))
    lb = None if lb is None else lb.reshape((1,) * (nd - lb.dim()) + tuple(lb.shape))
    for lab, d in ((la, -1), (lb, -2)):  # a contraction collapses what it sums over into one unit
        if lab is not None and lab.shape[d] > 1 and len(varying(lab)) > 1:
            g.union(lab, lab.narrow(d, 0, 1))
    if la is not None and lb is not None and la.shape[-1] > 1 and lb.shape[-2] > 1:
        g.union(la[..., :1, :].transpose(-1, -2), lb[..., :, :1])
    elif (la is not None and la.shape[-1] > 1 and lb is None) or (lb is not None and lb.shape[-2] > 1 and la is None):
        g.lock(la if la is not None else lb)
    ra = None if la is None else g.canonical(la[..., :1])
    rb = None if lb is None else g.canonical(lb[..., :1, :])
    if ra is not None and rb is not None:
        if ra.shape[-2] > 1 and rb.shape[-1] > 1:
            tr.fail(op, "both factors carry channels on their free dimensions")
        g.union(ra[..., :1, :], rb[..., :, :1])
        if any(d < ra.dim() - 2 for d in varying(ra)):  # channels paired across a batched product: heads
            g.heads.update(ra.unique().tolist() + rb.unique().tolist())
        return ra if ra.shape[-2] > 1 else rb
    return ra if ra is not None else rb


@rule("scaled_dot_product_attention")
def sdpa(tr: Tracer, func, args, kwargs, out) -> None:
    """softmax(q kᵀ) v: q and k pair per channel, heads couple across q, k and v."""
    q, k, v = args[:3]
    if kwargs.get("enable_gqa") and k.dim() > 2 and q.shape[-3] != k.shape[-3]:
        k, v = (_repeat_heads(tr, t, q.shape[-3] // t.shape[-3]) for t in (k, v))
    scores = torch.empty(q.shape[:-1] + (k.shape[-2],))
    kt = k.transpose(-1, -2)
    if tr.get(k) is not None:
        tr.set(kt, tr.get(k).transpose(-1, -2))
    lab = product_labels(tr, q, kt, scores, "scaled_dot_product_attention")
    if lab is not None:
        tr.set(scores, lab)
        perhead.attn_mask(tr, args[3] if len(args) > 3 else kwargs.get("attn_mask"), scores)
    tr.set(out, product_labels(tr, scores, v, out, "scaled_dot_product_attention"))


def _repeat_heads(tr: Tracer, t: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped-query attention: key/value head j serves query heads j·groups … (j+1)·groups − 1.

    A stand-in with each head repeated carries the labels, so every query head pairs with its KV head
    and a KV group with its query heads becomes one unit (``num_heads % num_key_value_heads`` holds).
    """
    rep = torch.empty(t.shape[:-3] + (t.shape[-3] * groups,) + t.shape[-2:], device="meta")
    lab = tr.get(t)
    if lab is not None:
        lab = lab.reshape((1,) * (t.dim() - lab.dim()) + tuple(lab.shape))
        tr.set(rep, lab.repeat_interleave(groups, -3) if lab.shape[-3] > 1 else lab)
    return rep


@rule("batch_norm", "instance_norm")
def batch_norm(tr: Tracer, func, args, kwargs, out) -> None:
    """Per-channel normalization: its statistics and affine entries follow the channel."""
    x = args[0]
    lab = along(tr, x, 1, func.__name__)
    names = ("running_mean", "running_var", "weight", "bias")
    for i, name in enumerate(names, start=1):
        t = args[i] if len(args) > i else kwargs.get(name)
        if lab is not None and tr.param(t) is not None:
            tr.graph.bind(*tr.param(t), 0, lab)
    if lab is not None:
        tr.set(out, lab.reshape(_shape_at(x.shape[1], 1, out.dim())))


@rule("group_norm")
def group_norm(tr: Tracer, func, args, kwargs, out) -> None:
    """GroupNorm normalizes each group on its own: a whole group is one unit, its entries follow."""
    x = args[0]
    lab = along(tr, x, 1, "group_norm")
    if lab is None:
        return
    groups = args[1] if len(args) > 1 else kwargs["num_groups"]
    per = lab.reshape(groups, -1)
    tr.graph.union(per, per[:, :1])
    for i, name in ((2, "weight"), (3, "bias")):
        t = args[i] if len(args) > i else kwargs.get(name)
        if tr.param(t) is not None:
            tr.graph.bind(*tr.param(t), 0, lab)
    tr.set(out, lab.reshape(_shape_at(x.shape[1], 1, out.dim())))


@rule("layer_norm", "rms_norm")
def norm(tr: Tracer, func, args, kwargs, out) -> None:
    """Norms over channels mix them (the mean and variance change), so their channels are kept."""
    x = args[0]
    lab = tr.get(x)
    if lab is not None:
        tr.graph.lock(lab)
        tr.set(out, lab)


@rule("avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d",
      "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
      "adaptive_max_pool2d", "adaptive_max_pool3d", "max_pool2d_with_indices", "interpolate",
      "upsample", "_adaptive_max_pool2d")
def pool(tr: Tracer, func, args, kwargs, out) -> None:
    """Spatial ops act per channel."""
    x = args[0]
    lab = along(tr, x, 1, func.__name__)
    res = out[0] if isinstance(out, tuple) else out
    tr.set(res, lab.reshape(_shape_at(x.shape[1], 1, res.dim())))


@rule("prelu")
def prelu(tr: Tracer, func, args, kwargs, out) -> None:
    x, w = args[0], args[1]
    lab = along(tr, x, 1, "prelu")
    if w.numel() > 1:
        tr.graph.bind(*_owner(tr, w, "prelu"), 0, lab)
    tr.set(out, lab.reshape(_shape_at(x.shape[1], 1, out.dim())))
