"""The model zoo: ``create(name, num_classes=…, in_channels=…)`` and safe ``load_weights``."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..errors import UnknownNameError
from ..inputs import check_number
from .gpt import GPT, gpt
from .resnet import ResNet, resnet
from .small import CNN, MLP, LeNet5, cnn, lenet5, lenet300, mlp
from .vgg import VGG, vgg
from .vit import ViT, vit_tiny
from .weights import load_weights, read_state_dict

# name -> (factory, default in_channels, default input size); a language model's size is (context,)
_ZOO: dict[str, tuple[Callable[..., nn.Module], int, int]] = {
    "mlp": (mlp, 1, 28),
    "lenet300": (lenet300, 1, 28),
    "cnn": (cnn, 1, 8),
    "lenet5": (lenet5, 1, 28),
    **{f"resnet{d}": (resnet(d), 3, 32) for d in (20, 32, 44, 56)},
    **{f"vgg{d}": (vgg(d), 3, 32) for d in (11, 16)},
    "vit-tiny": (vit_tiny, 1, 28),
    "gpt": (gpt(dim=128, depth=4, heads=4, mlp=512), 1, (128,)),  # 0.83 M parameters at 256 bytes
    "gpt-8x160": (gpt(dim=160, depth=8, heads=5, mlp=640), 1, (128,)),  # 2.58 M parameters, 8 blocks: bench/lm.py
    "gpt-tiny": (gpt(dim=32, depth=1, heads=2, mlp=64), 1, (32,)),  # for tests
}


def names() -> list[str]:
    """The model names :func:`create` accepts."""
    return sorted(_ZOO)


def create(name: str, *, num_classes: int = 10, in_channels: int | None = None,
           input_size: int | tuple[int, int] | None = None, **options: Any) -> nn.Module:
    """A freshly initialised model from the zoo.

    ``in_channels`` / ``input_size`` default to the model's usual data (1×28×28 for the MNIST
    models and ``vit-tiny``, 1×8×8 for ``cnn``, 3×32×32 for the CIFAR ResNets and VGGs); ``options`` go to the
    model (for example ``hidden=(64,)`` for ``mlp``). For the language models ``gpt``, ``gpt-8x160`` and ``gpt-tiny``,
    ``num_classes`` is the vocabulary (256 for bytes) and ``input_size`` the context length in tokens.
    """
    if name not in _ZOO:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    check_number(num_classes, "num_classes", low=1, integer=True)
    if in_channels is not None:
        check_number(in_channels, "in_channels", low=1, integer=True)
    factory, channels, size = _ZOO[name]
    size = input_size if input_size is not None else size
    size = (size, size) if isinstance(size, int) else tuple(size)
    for d in size:
        check_number(d, "input_size", low=1, integer=True)
    return factory(num_classes=num_classes, in_channels=in_channels or channels, input_size=size, **options)


__all__ = ["create", "names", "load_weights", "read_state_dict",
           "MLP", "CNN", "LeNet5", "ResNet", "VGG", "ViT", "GPT"]
