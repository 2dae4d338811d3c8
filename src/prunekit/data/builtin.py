"""Datasets that need no files: scikit-learn's bundled 8×8 digits and a seeded synthetic set."""
from __future__ import annotations

import numpy as np
import torch

from .base import ArrayDataset


def digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """The 1,797 8×8 digits, scaled to [0, 1], as (N, 1, 8, 8); a fixed stratified-free random test split.

    The digits have no official test split, so ``test_fraction`` of them (seed 0 unless told)
    are held out once; the validation set is later carved from the remaining training part.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test].sort().values, perm[n_test:].sort().values
    classes = tuple(str(c) for c in range(10))
    return ArrayDataset(x[train], y[train], classes=classes), ArrayDataset(x[test], y[test], classes=classes)


def synthetic(n_train: int = 1000, n_test: int = 200, *, num_classes: int = 10, shape: tuple[int, ...] = (1, 8, 8),
              noise: float = 0.5, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """A seeded, learnable classification set: each class is a random prototype plus Gaussian noise."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn((num_classes, *shape), generator=gen)

    def sample(n: int) -> ArrayDataset:
        y = torch.randint(num_classes, (n,), generator=gen)
        x = prototypes[y] + noise * torch.randn((n, *shape), generator=gen)
        return ArrayDataset(x, y, classes=tuple(str(c) for c in range(num_classes)))

    return sample(n_train), sample(n_test)
