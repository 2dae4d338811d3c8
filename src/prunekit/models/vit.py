"""A tiny Vision Transformer: image patches → pre-norm encoder blocks → mean-pooled classifier.

Small enough for CPU sweeps on 8×8 digits or 28×28 MNIST, and it has what structured pruning of
transformers needs to be benchmarked: attention heads (``nn.MultiheadAttention``) and MLP widths.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import PruneError


class EncoderBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    """Non-overlapping ``patch``×``patch`` patches embedded linearly, learned positions, ``depth`` blocks."""

    def __init__(self, in_channels: int, input_size: tuple[int, int], num_classes: int, patch: int,
                 dim: int, depth: int, heads: int, mlp: int):
        super().__init__()
        if input_size[0] % patch or input_size[1] % patch:
            raise PruneError(f"vit-tiny needs an input size divisible by patch={patch} (got {input_size}); "
                             "pass patch= that divides it")
        self.patch = patch
        tokens = (input_size[0] // patch) * (input_size[1] // patch)
        self.embed = nn.Linear(in_channels * patch * patch, dim)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        p = self.patch
        x = x.unfold(2, p, p).unfold(3, p, p)  # (b, c, H/p, W/p, p, p)
        x = x.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
        x = self.blocks(self.embed(x) + self.pos)
        return self.head(self.norm(x).mean(1))


def vit_tiny(*, num_classes: int, in_channels: int, input_size: tuple[int, int], patch: int | None = None,
             dim: int = 32, depth: int = 2, heads: int = 4, mlp: int = 64) -> nn.Module:
    """ViT-tiny, width 32, 4 heads, 2 blocks. The default patch is the largest even size leaving at least 4
    patches a side (2×2 pixels on 8×8 digits, 4×4 on MNIST), so patch vectors suit N:M blocks of 4."""
    patch = patch or _default_patch(min(input_size))
    return ViT(in_channels, input_size, num_classes, patch, dim, depth, heads, mlp)


def _default_patch(size: int) -> int:
    fits = [p for p in range(1, size // 4 + 1) if size % p == 0]
    even = [p for p in fits if p % 2 == 0]
    return max(even or fits or [1])
