"""Shared fixtures: small models and the path to ../shared (real data), skipped cleanly when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

SHARED = Path(os.environ.get("PRUNEKIT_SHARED") or Path(__file__).resolve().parents[2] / "shared")

# Test tensors are tiny: one thread avoids OpenMP oversubscription on a shared 2-core machine.
torch.set_num_threads(1)


@pytest.fixture
def shared() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared is not present")
    return SHARED


def mlp(seed: int = 0, sizes=(20, 32, 16, 10)) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def convnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(12 * 7 * 7, 10),
    )
