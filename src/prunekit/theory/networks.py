"""Target networks with i.i.d. weights (the setting of Qian & Klabjan 2021) and input distributions.

A random network records the shape of one input in ``model.input_shape``, so :func:`draw_inputs` and
``pk.theory.gap(model, "gaussian")`` need nothing else.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import PruneError

INITS = ("gaussian", "uniform")
KINDS = ("fcn", "cnn")
DISTRIBUTIONS = ("gaussian", "uniform", "sphere")


def _init_(weight: torch.Tensor, init: str, std: float | None, gen: torch.Generator) -> None:
    """Fill ``weight`` with i.i.d. draws of standard deviation ``std`` (He scale √(2/fan_in) if None)."""
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) if std is None else std
    with torch.no_grad():
        if init == "gaussian":
            weight.copy_(torch.randn(weight.shape, generator=gen) * std)
        else:  # U(-a, a) has standard deviation a / √3
            weight.copy_((torch.rand(weight.shape, generator=gen) * 2 - 1) * std * math.sqrt(3.0))


def random_network(
    widths: Sequence[int],
    kind: str = "fcn",
    init: str = "gaussian",
    *,
    std: float | None = None,
    bias: bool = False,
    kernel_size: int = 3,
    image_size: int = 8,
    seed: int = 0,
) -> nn.Sequential:
    """A ReLU network whose weights are i.i.d. Gaussian or uniform draws.

    ``kind="fcn"``: ``Linear(widths[i], widths[i+1])`` layers. ``kind="cnn"``: ``Conv2d`` layers with
    ``widths`` as channel counts (``kernel_size``, same padding) on ``image_size``² inputs; the output is
    the last feature map, flattened. ReLU sits between layers, not after the last. Every weight has
    standard deviation ``std`` (default √(2/fan_in), which keeps the signal's scale through ReLU
    layers); biases, if asked for, are zero so the gap comes from the weights alone.
    """
    if kind not in KINDS:
        raise PruneError(f"unknown network kind {kind!r}; choose one of {', '.join(KINDS)}")
    if init not in INITS:
        raise PruneError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise PruneError(f"widths needs at least two positive sizes, input and output (got {widths})")
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layer = nn.Linear(a, b, bias=bias) if kind == "fcn" else nn.Conv2d(
            a, b, kernel_size, padding=kernel_size // 2, bias=bias
        )
        _init_(layer.weight, init, std, gen)
        if bias:
            nn.init.zeros_(layer.bias)
        layers.append(layer)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if kind == "cnn":
        layers.append(nn.Flatten())
    model = nn.Sequential(*layers)
    model.input_shape = (widths[0],) if kind == "fcn" else (widths[0], image_size, image_size)
    return model.eval()


def draw_inputs(shape: Sequence[int], n: int, distribution: str = "gaussian", seed: int = 0) -> torch.Tensor:
    """``n`` i.i.d. inputs of ``shape``: standard Gaussian, uniform on [−1, 1], or uniform on the unit sphere."""
    if distribution not in DISTRIBUTIONS:
        raise PruneError(f"unknown input distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    if n < 1:
        raise PruneError(f"need at least one input (got n={n})")
    gen = torch.Generator().manual_seed(seed)
    if distribution == "uniform":
        return torch.rand((n, *shape), generator=gen) * 2 - 1
    x = torch.randn((n, *shape), generator=gen)
    if distribution == "sphere":
        x = x / x.flatten(1).norm(dim=1).clamp_min(1e-12).view(n, *([1] * len(shape)))
    return x


def second_moment(distribution: str, dim: int) -> float:
    """E[x_j²] of one input coordinate under ``distribution`` (``dim`` coordinates in all)."""
    return {"gaussian": 1.0, "uniform": 1.0 / 3.0, "sphere": 1.0 / dim}[distribution]
