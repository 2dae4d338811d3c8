"""nn.MultiheadAttention: traced as one unit (its heads are the units) and rebuilt with fewer heads.

``nn.MultiheadAttention`` derives its head size from ``embed_dim // num_heads``, so it cannot hold
fewer heads than its embedding allows; :class:`PrunedMultiheadAttention` is the same computation
with an inner width of ``num_heads × head_dim`` that may be smaller than ``embed_dim``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .layers import along
from .registry import leaf, rule

if TYPE_CHECKING:
    from ..trace import Tracer


class PrunedMultiheadAttention(nn.Module):
    """Multi-head attention whose heads were pruned; same call signature and state names as MHA."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float = 0.0,
                 bias: bool = True, batch_first: bool = False):
        super().__init__()
        inner = num_heads * head_dim
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        self._qkv_same_embed_dim = False  # keeps nn.TransformerEncoderLayer off its fused fast path
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner)) if bias else None
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, t, s = query.shape[0], query.shape[1], key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        q = F.linear(query, w_q, b_q).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores + _additive(attn_mask, scores.dtype, (t, s))
        if key_padding_mask is not None:
            scores = scores + _additive(key_padding_mask, scores.dtype, (b, s)).view(b, 1, 1, s)
        if is_causal and attn_mask is None:
            scores = scores.masked_fill(torch.ones(t, s, dtype=torch.bool).triu(1), float("-inf"))
        attn = F.dropout(scores.softmax(-1), self.dropout, self.training)
        out = (attn @ v).transpose(1, 2).reshape(b, t, -1)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)  # functional, as in nn.MultiheadAttention
        if not self.batch_first:
            out = out.transpose(0, 1)
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
        return out, weights


def _additive(mask, dtype, shape) -> torch.Tensor | float:
    if mask is None:
        return 0.0
    if mask.shape != torch.Size(shape):
        raise ValueError(f"pruned attention supports masks of shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return torch.zeros(shape, dtype=dtype).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def mha_leaf(tr: Tracer, name: str, module: nn.MultiheadAttention, args, kwargs, out) -> None:
    """Couple an attention block: inputs to in-projection columns, heads to rows, output to out_proj."""
    if isinstance(module, nn.MultiheadAttention) and (
            not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn):
        tr.fail("multi_head_attention_forward", "separate k/v dims, bias_k/bias_v or add_zero_attn")
    g = tr.graph
    names = ("query", "key", "value")
    for i, n in enumerate(names):
        x = args[i] if len(args) > i else kwargs.get(n)
        lab = along(tr, x, -1, "multi_head_attention_forward")
        if lab is not None:
            g.bind(name, "in_proj_weight", 1, lab)
    h = module.num_heads
    hd = module.embed_dim // h if isinstance(module, nn.MultiheadAttention) else module.head_dim
    heads = g.new(h)
    g.heads.update(heads.tolist())
    per_head = heads.repeat_interleave(hd)
    g.bind(name, "in_proj_weight", 0, per_head.repeat(3))
    if module.in_proj_bias is not None:
        g.bind(name, "in_proj_bias", 0, per_head.repeat(3))
    g.bind(f"{name}.out_proj", "weight", 1, per_head)
    out_lab = g.new(module.out_proj.out_features)
    g.bind(f"{name}.out_proj", "weight", 0, out_lab)
    if module.out_proj.bias is not None:
        g.bind(f"{name}.out_proj", "bias", 0, out_lab)
    g.mha[name] = h
    res = out[0]
    tr.set(res, out_lab.reshape((1,) * (res.dim() - 1) + (-1,)))


leaf(nn.MultiheadAttention, PrunedMultiheadAttention)(mha_leaf)


@rule("repeat_interleave", "repeat", "tile")
def repeated(tr: Tracer, func, args, kwargs, out) -> None:
    """Repeating a tensor repeats its labels: grouped-query attention's KV heads serve their query heads."""
    if any(isinstance(a, torch.Tensor) for a in list(args[1:]) + list(kwargs.values())):
        tr.fail(func.__name__, "the repeat counts are a tensor, so the repeated layout is not known")
    tr.set(out, func(tr.full(args[0]), *args[1:], **kwargs))
