"""CIFAR VGG with BatchNorm (as in OpenLTH and Frankle & Carbin): conv stacks then one linear layer."""
from __future__ import annotations

from torch import nn

CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """conv3×3-BN-ReLU blocks with 2×2 max-pools ("M"), global average pool, Linear(512 → classes)."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                channels = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


def vgg(depth: int):
    """A factory for ``create``: CIFAR VGG-``depth`` with BatchNorm."""

    def make(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
        return VGG(depth, num_classes, in_channels)

    make.__doc__ = f"VGG-{depth} with BatchNorm for 32×32 images."
    return make
