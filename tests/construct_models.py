"""Hand-built versions of constructs third-party models use (timm, transformers, Swin, T5, ShuffleNet).

Each is small and self-contained so the construct tests compare a compacted model with the masked one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WidthAttrAttention(nn.Module):
    """timm style: fused qkv reshaped to (B, N, 3, heads, head_dim), output width a stored attribute."""

    def __init__(self, dim: int = 32, num_heads: int = 4, head_dim: int = 8):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.attn_dim = num_heads * head_dim
        self.qkv, self.proj = nn.Linear(dim, 3 * self.attn_dim), nn.Linear(self.attn_dim, dim)

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(b, n, self.attn_dim))


class HeadFirstAttention(nn.Module):
    """Head-first fused qkv: view(B, N, heads, 3·head_dim).chunk(3); output sized by all_head_size."""

    def __init__(self, dim: int = 32, num_heads: int = 4):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = num_heads, dim // num_heads
        self.all_head_size = num_heads * self.attention_head_size
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, self.num_attention_heads, 3 * self.attention_head_size).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        att = (q @ k.transpose(-1, -2)) * self.attention_head_size ** -0.5
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        y = att.softmax(-1) @ v
        return self.out(y.permute(0, 2, 1, 3).contiguous().view(b, n, self.all_head_size))


class InnerDimAttention(nn.Module):
    """Separate q/k/v, sizes from ``heads * dim_head`` (diffusers/lucidrains style ``inner_dim``)."""

    def __init__(self, dim: int = 32, heads: int = 4, dim_head: int = 6):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.inner_dim = heads * dim_head
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, self.inner_dim, bias=False) for _ in range(3))
        self.to_out = nn.Linear(self.inner_dim, dim)

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, -1, self.heads, self.dim_head).transpose(1, 2) for f in (self.to_q, self.to_k, self.to_v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.to_out(y.transpose(1, 2).reshape(b, -1, self.heads * self.dim_head))


class Encoder(nn.Module):
    """Token projection, ``depth`` pre-norm blocks of ``attn`` + MLP, a classifier head."""

    def __init__(self, attn, dim: int = 32, depth: int = 2, cin: int = 16):
        super().__init__()
        self.inp = nn.Linear(cin, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.attns = nn.ModuleList(attn() for _ in range(depth))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(dim, 48), nn.GELU(), nn.Linear(48, dim)) for _ in range(depth))
        self.head = nn.Linear(dim, 10)

    def forward(self, x, mask=None):
        x = self.inp(x)
        for norm, attn, mlp in zip(self.norms, self.attns, self.mlps):
            x = x + attn(norm(x), mask)
            x = x + mlp(x)
        return self.head(x)


class SplitByAttr(nn.Module):
    """``x.split(self.chs // 2, dim=1)``: two halves of a conv's output gate each other."""

    def __init__(self, chs: int = 16):
        super().__init__()
        self.chs = chs
        self.conv, self.out = nn.Conv2d(3, chs, 3, padding=1), nn.Conv2d(chs // 2, 4, 1)

    def forward(self, x):
        a, b = self.conv(x).split(self.chs // 2, dim=1)
        return self.out(a * torch.sigmoid(b))


class ShapeAs(nn.Module):
    """view_as / reshape_as / expand_as with a traced argument (squeeze-excite gating, a flattened branch)."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc1, self.fc2 = nn.Conv2d(3, 12, 3, padding=1), nn.Linear(12, 6), nn.Linear(6, 12)
        self.mix, self.out = nn.Conv2d(12, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(h.mean((2, 3))))))
        h = h * s.view(s.shape[0], -1, 1, 1).expand_as(h)
        m = self.mix(h)
        flat = m.flatten(1)
        return self.out(flat.view_as(m) + flat.reshape_as(m))


class ChannelShuffle(nn.Module):
    """ShuffleNet: grouped 1×1 conv, channel shuffle view(B, g, C/g, H, W).transpose(1, 2), grouped conv."""

    def __init__(self, groups: int = 4, chs: int = 16):
        super().__init__()
        self.groups = groups
        self.stem = nn.Conv2d(3, chs, 3, padding=1)
        self.g1, self.g2 = nn.Conv2d(chs, chs, 1, groups=groups), nn.Conv2d(chs, chs, 1, groups=groups)
        self.head = nn.Conv2d(chs, 5, 1)

    def forward(self, x):
        h = torch.relu(self.g1(torch.relu(self.stem(x))))
        b, c, hh, ww = h.shape
        h = h.view(b, self.groups, c // self.groups, hh, ww).transpose(1, 2).reshape(b, c, hh, ww)
        return self.head(torch.relu(self.g2(h)))


class PlainShuffle(nn.Module):
    """A channel shuffle between ungrouped convs (groups a literal): a fixed permutation of channels."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 12, 3, padding=1), nn.Conv2d(12, 5, 1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        b, c, hh, ww = h.shape
        return self.b(h.view(b, 3, c // 3, hh, ww).transpose(1, 2).reshape(b, c, hh, ww))
