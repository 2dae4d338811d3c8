"""The harness's view of the data and model zoo: names for validation, cached loading, creation."""
from __future__ import annotations

import functools

import torch
from torch import nn


def dataset_names() -> list[str]:
    from .. import data

    return data.names()


def model_names() -> list[str]:
    from .. import models

    return models.names()


@functools.lru_cache(maxsize=4)
def load_data(name: str, root: str | None, val_fraction: float) -> tuple:
    """``(train, val, test)``, cached per process so a worker loads each dataset once.

    The validation split uses seed 0 for every run: seeds vary the model, never the split.
    """
    from .. import data

    return data.load(name, root, val_fraction=val_fraction, seed=0)


def create_model(name: str, train: object, seed: int) -> nn.Module:
    """A freshly initialised zoo model shaped for ``train``'s images and classes (for token windows,
    its vocabulary and window length; or the user's ``module:factory``), seeded."""
    from .. import models, userdefs

    torch.manual_seed(seed)
    if userdefs.is_reference(name):
        return userdefs.model(name)
    x, _ = train[0]
    if not x.is_floating_point():  # token ids (T,): a language model of context T
        return models.create(name, num_classes=train.num_classes, input_size=tuple(x.shape))
    return models.create(name, num_classes=train.num_classes, in_channels=x.shape[0], input_size=tuple(x.shape[1:]))


def default_input_shape(name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of the data a zoo model is made for (what ``models.create`` assumes by default)."""
    from .. import models

    if name not in models.names():
        from ..errors import UnknownNameError

        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(models.names())}")
    _, channels, size = models._ZOO[name]
    return (channels, size, size)
