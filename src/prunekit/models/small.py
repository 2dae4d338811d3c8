"""Small models for MNIST-sized inputs: an MLP, LeNet-300-100, a tiny CNN and the Caffe LeNet-5."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import PruneError


def _flat(in_channels: int, input_size: tuple[int, int]) -> int:
    return in_channels * input_size[0] * input_size[1]


class MLP(nn.Sequential):
    """Flatten, then Linear+ReLU per hidden width, then a Linear classifier."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int):
        layers: list[nn.Module] = [nn.Flatten()]
        widths = [in_features, *hidden]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        super().__init__(*layers)


def mlp(*, num_classes: int, in_channels: int, input_size: tuple[int, int],
        hidden: Sequence[int] = (256, 128)) -> nn.Module:
    """A plain MLP on flattened images; ``hidden`` sets the layer widths."""
    return MLP(_flat(in_channels, input_size), hidden, num_classes)


def lenet300(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998): 784-300-100-10, 266,610 parameters on MNIST."""
    return MLP(_flat(in_channels, input_size), (300, 100), num_classes)


class CNN(nn.Module):
    """Two 3×3 conv layers (pad 1), a 2×2 max-pool and a Linear classifier: quick on 8×8 digits."""

    def __init__(self, in_channels: int, input_size: tuple[int, int], num_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        h, w = input_size[0] // 2, input_size[1] // 2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * h * w, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def cnn(*, num_classes: int, in_channels: int, input_size: tuple[int, int], width: int = 16) -> nn.Module:
    """A tiny CNN (conv ``width`` → conv ``2·width`` → pool → fc)."""
    return CNN(in_channels, input_size, num_classes, width)


class LeNet5(nn.Module):
    """The Caffe LeNet-5 that Han et al. 2015 pruned: conv 20 → pool → conv 50 → pool → fc 500 → fc.

    431,080 parameters on 1×28×28 MNIST (5×5 convs without padding, 2×2 max-pools).
    """

    def __init__(self, in_channels: int, input_size: tuple[int, int], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        h, w = ((input_size[0] - 4) // 2 - 4) // 2, ((input_size[1] - 4) // 2 - 4) // 2
        if h < 1 or w < 1:
            raise PruneError(f"lenet5 needs inputs of at least 12×12 (got {input_size}); use 'cnn' for digits")
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(50 * h * w, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(x))
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


def lenet5(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
    """Caffe LeNet-5 (Han et al. 2015's MNIST conv net)."""
    return LeNet5(in_channels, input_size, num_classes)
