"""CIFAR ResNets (He et al. 2015, §4.2) with the parameter-free "option A" shortcut.

The module layout matches akamaster/pytorch_resnet_cifar10, so its pretrained files load strictly.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); a shape change subsamples and zero-pads."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.pad = (planes - in_planes) // 2

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.downsample:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class ResNet(nn.Module):
    """conv3×3(16) → three stages of n blocks (16, 32, 64 channels) → global average pool → linear."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes = 16
        for stage, width in enumerate((16, 32, 64), start=1):
            blocks = []
            for b in range(n):
                stride = 2 if stage > 1 and b == 0 else 1
                blocks.append(BasicBlock(planes, width, stride))
                planes = width
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet(depth: int):
    """A factory for ``create``: the CIFAR ResNet of the given depth (6n + 2)."""

    def make(*, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> nn.Module:
        return ResNet(depth, num_classes, in_channels)

    make.__doc__ = f"ResNet-{depth} for 32×32 images (option-A shortcuts)."
    return make
