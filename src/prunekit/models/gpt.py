"""A small causal Transformer language model (GPT-2 style, pre-norm) for byte- or character-level text.

Every projection is its own ``nn.Linear`` (``q``, ``k``, ``v``, ``out`` in attention; ``fc``, ``proj`` in
the MLP), the layers that Wanda and SparseGPT prune one by one in a large LM. The output head is not
tied to the token embedding, so it can be kept dense (``exclude=["head"]``) as those papers do.
Input: token ids ``(B, T)`` with ``T`` ≤ the context length; output: logits ``(B, T, vocab)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PruneError


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where a position attends only to itself and earlier positions."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise PruneError(f"gpt: dim={dim} is not divisible by heads={heads}; pass a dim that heads divides")
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def split(h: torch.Tensor) -> torch.Tensor:  # (b, t, dim) -> (b, heads, t, dim / heads)
            return h.reshape(b, t, self.heads, -1).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(LN(x)), then x + MLP(LN(x)) with a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.fc, self.proj = nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """Token and learned position embeddings, ``depth`` blocks, a final LayerNorm and a linear head."""

    def __init__(self, vocab: int, context: int, dim: int, depth: int, heads: int, mlp: int):
        super().__init__()
        self.context = context
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.apply(_init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith(("out.weight", "proj.weight")):
                nn.init.normal_(p, std=0.02 / (2 * depth) ** 0.5)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.is_floating_point():
            raise PruneError(f"gpt takes token ids (batch, time) of an integer type, got {tuple(idx.shape)} "
                             f"{idx.dtype}")
        t = idx.shape[1]
        if t > self.context:
            raise PruneError(f"gpt: {t} tokens exceed its context of {self.context}; pass shorter windows")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        return self.head(self.norm(self.blocks(x)))


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


def gpt(*, dim: int, depth: int, heads: int, mlp: int):
    """A factory for the zoo: ``num_classes`` is the vocabulary, ``input_size`` is ``(context length,)``."""

    def make(*, num_classes: int, in_channels: int, input_size: tuple[int, ...], **options) -> nn.Module:
        if in_channels != 1:
            raise PruneError(f"gpt reads one stream of token ids (in_channels=1), got in_channels={in_channels}")
        settings = {"dim": dim, "depth": depth, "heads": heads, "mlp": mlp, **options}
        return GPT(num_classes, input_size[-1], **settings)

    return make
