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


class ShuffleV2Block(nn.Module):
    """ShuffleNetV2 unit: chunk(2), one half through convs, concat, channel shuffle with 2 groups."""

    def __init__(self, chs: int = 16):
        super().__init__()
        half = chs // 2
        self.branch = nn.Sequential(nn.Conv2d(half, half, 1), nn.BatchNorm2d(half), nn.ReLU(),
                                    nn.Conv2d(half, half, 3, padding=1, groups=half), nn.BatchNorm2d(half),
                                    nn.Conv2d(half, half, 1), nn.ReLU())

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def shufflenet_v2() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), ShuffleV2Block(), ShuffleV2Block(),
                         nn.Conv2d(16, 24, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))


def window_coords(window: int) -> torch.Tensor:
    """Swin's relative_position_index: for each (query, key) pair in a window, its offset's table row."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    """Swin window attention with a per-head relative-position bias: a table indexed by a buffer
    (``mlp=False``, Swin v1) or an MLP over relative coordinates producing one value per head (Swin v2)."""

    def __init__(self, dim: int = 32, num_heads: int = 4, window: int = 4, mlp: bool = False):
        super().__init__()
        self.num_heads, self.head_dim, self.window = num_heads, dim // num_heads, window
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.register_buffer("relative_position_index", window_coords(window).flatten(), persistent=False)
        span = torch.arange(-(window - 1), window, dtype=torch.float32) / (window - 1)
        self.register_buffer("coords_table", torch.stack(torch.meshgrid(span, span, indexing="ij"), -1).view(-1, 2))
        if mlp:
            self.cpb_mlp = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, num_heads, bias=False))
        else:
            self.relative_position_bias_table = nn.Parameter(torch.randn((2 * window - 1) ** 2, num_heads) * 0.5)

    def bias(self) -> torch.Tensor:
        n = self.window ** 2
        table = self.cpb_mlp(self.coords_table) if hasattr(self, "cpb_mlp") else self.relative_position_bias_table
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()
        return 16 * torch.sigmoid(bias) if hasattr(self, "cpb_mlp") else bias

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1) + self.bias().unsqueeze(0)
        if mask is not None:
            attn = attn.masked_fill(~mask, float("-inf"))
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, -1))


class SwinStage(nn.Module):
    """Patch embedding, windows of ``window``², two window-attention blocks, pooled classifier."""

    def __init__(self, mlp: bool = False, dim: int = 32, window: int = 4):
        super().__init__()
        self.window = window
        self.embed = nn.Conv2d(3, dim, 2, stride=2)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
        self.attns = nn.ModuleList(WindowAttention(dim, window=window, mlp=mlp) for _ in range(2))
        self.head = nn.Linear(dim, 10)

    def forward(self, img):
        x = self.embed(img).permute(0, 2, 3, 1)
        b, h, w, c = x.shape
        s = self.window
        win = x.view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        for norm, attn in zip(self.norms, self.attns):
            win = win + attn(norm(win))
        return self.head(win.mean(1)).view(b, -1, 10).mean(1)


class TalkingHeadsAttention(nn.Module):
    """Talking heads (Shazeer et al. 2020; CaiT): the attention logits and weights mixed across heads,
    before the softmax by a 1×1 conv, after it by a Linear over the head axis."""

    def __init__(self, dim: int = 32, num_heads: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.proj_l, self.proj_w = nn.Conv2d(num_heads, num_heads, 1), nn.Linear(num_heads, num_heads)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = self.proj_l(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5)
        if mask is not None:
            attn = attn.masked_fill(~mask, float("-inf"))
        attn = self.proj_w(attn.softmax(-1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class BiasedSDPA(nn.Module):
    """Attention that adds a position bias handed in by its caller through SDPA's ``attn_mask``."""

    def __init__(self, dim: int = 32, n_heads: int = 4):
        super().__init__()
        self.n_heads = n_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x, position_bias):
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, n, self.n_heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=position_bias)
        return self.o(y.transpose(1, 2).reshape(b, n, -1))


class T5Like(nn.Module):
    """T5's shared relative-position bias: one Embedding(buckets, heads), computed once, used by every layer."""

    def __init__(self, vocab: int = 50, dim: int = 32, heads: int = 4, depth: int = 2, buckets: int = 16):
        super().__init__()
        self.buckets = buckets
        self.tok = nn.Embedding(vocab, dim)
        self.relative_attention_bias = nn.Embedding(buckets, heads)
        self.layers = nn.ModuleList(BiasedSDPA(dim, heads) for _ in range(depth))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(dim, 48), nn.ReLU(), nn.Linear(48, dim)) for _ in range(depth))
        self.lm_head = nn.Linear(dim, vocab)

    def forward(self, ids, pad=None):
        n = ids.shape[1]
        pos = torch.arange(n)
        bucket = (pos[None, :] - pos[:, None]).clamp(-(self.buckets // 2), self.buckets // 2 - 1) + self.buckets // 2
        bias = self.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)
        if pad is not None:  # True where a key is padding
            bias = bias.masked_fill(pad[:, None, None, :], float("-inf"))
        x = self.tok(ids)
        for attn, mlp in zip(self.layers, self.mlps):
            x = x + attn(x, bias)
            x = x + mlp(x)
        return self.lm_head(x)


class CaiTStyleAttention(nn.Module):
    """timm's ``reshape(B, N, C)`` with C read from the input: the heads must keep the input's width."""

    def __init__(self, dim: int = 32, num_heads: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class UnitsAttention(WidthAttrAttention):
    """Output width ``self.blocks * 16``: a head count that is not a multiple of 2 has no integer ``blocks``."""

    def __init__(self):
        super().__init__()
        self.blocks = 2

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, self.blocks * 16))


class TwoAttrWidth(WidthAttrAttention):
    """Output width ``self.rows * self.cols``, two attributes used nowhere else: which one shrinks is unknowable."""

    def __init__(self):
        super().__init__()
        self.rows, self.cols = 4, 8

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, -1, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, self.rows * self.cols))


class LiteralWidth(nn.Module):
    """A channel count written as a number in forward: ``view(b, 16, -1)`` after a prunable conv."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 16, 3, padding=1), nn.Linear(64, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(F.adaptive_avg_pool2d(h, 4).view(x.shape[0], 16, -1)).mean(1)


class ChecksWidth(nn.Module):
    """A forward pass that checks a width against an attribute it never uses as a size."""

    def __init__(self):
        super().__init__()
        self.width = 8
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if h.shape[1] != self.width:
            raise ValueError(f"expected {self.width} channels")
        return self.head(h)


def pad_mask(batch: int, n: int) -> torch.Tensor:
    """A key-padding mask (True: attend) of shape (batch, 1, 1, n), every row keeping at least 2 keys."""
    lengths = torch.randint(2, n + 1, (batch,), generator=torch.Generator().manual_seed(batch * n))
    return (torch.arange(n)[None, :] < lengths[:, None])[:, None, None, :]


def tokens(batch: int, n: int) -> torch.Tensor:
    """Seeded (batch, n, 16) token features for the :class:`Encoder` constructs."""
    return torch.randn(batch, n, 16, generator=torch.Generator().manual_seed(batch + n))
