"""Batch transforms in plain torch (no torchvision): normalization and CIFAR's crop + flip."""
from __future__ import annotations

from typing import Sequence

import torch


class Normalize:
    """uint8 (or [0, 1] float) images → float32 ``(x / scale − mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float = 255.0):
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.scale = scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / self.scale - self.mean) / self.std

    @property
    def black(self) -> torch.Tensor:
        """The normalized value of a zero pixel, per channel: what padding should hold."""
        return (-self.mean / self.std).flatten()


class RandomCropFlip:
    """Random ``size`` crop of the image zero-padded by ``pad`` on each side, then a horizontal flip
    with probability ½ (the standard CIFAR augmentation); randomness from torch's global RNG."""

    def __init__(self, pad: int = 4, flip: bool = True, fill: torch.Tensor | None = None):
        self.pad, self.flip, self.fill = pad, flip, fill

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.pad
        padded = x.new_zeros((b, c, h + 2 * p, w + 2 * p))
        if self.fill is not None:
            padded += self.fill.to(x.dtype)[None, :, None, None]
        padded[:, :, p:p + h, p:p + w] = x
        dy = torch.randint(0, 2 * p + 1, (b,))
        dx = torch.randint(0, 2 * p + 1, (b,))
        rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (b, h, 1)
        cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (b, 1, w)
        out = padded.permute(0, 2, 3, 1)[torch.arange(b)[:, None, None], rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            flip = torch.rand(b) < 0.5
            out = torch.where(flip[:, None, None, None], out.flip(3), out)
        return out.contiguous()


class Compose:
    """Apply transforms in order."""

    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x
