"""In-memory datasets, the train/validation split, and fast batching for the training loop."""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import PruneError

Transform = Callable[[torch.Tensor], torch.Tensor]  # a batch (B, C, H, W) -> a batch of the same shape


class ArrayDataset(Dataset):
    """Images and labels held as tensors; ``transform`` (augmentation) is applied per batch.

    ``dataset[i]`` gives ``(image, label)`` like any torch dataset; the training loop instead calls
    :meth:`batch` with many indices at once, which is far faster on CPU than per-item loading.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Transform | None = None,
                 classes: tuple[str, ...] = ()):
        if len(images) != len(labels):
            raise PruneError(f"{len(images)} images but {len(labels)} labels; pass one label per image")
        self.images = images
        self.labels = labels.long()
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batch(torch.tensor([i]))
        return x[0], y[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples at ``index`` as one batch, augmented if this dataset has a transform."""
        x = self.images[index]
        return (x if self.transform is None else self.transform(x)), self.labels[index]

    def subset(self, index: torch.Tensor, transform: Transform | None | str = "same") -> "ArrayDataset":
        """A new dataset holding the examples at ``index`` (copied); ``transform`` defaults to this one's."""
        transform = self.transform if isinstance(transform, str) else transform
        return type(self)(self.images[index], self.labels[index], transform, self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes) or int(self.labels.max()) + 1

    def __repr__(self) -> str:
        return f"ArrayDataset({len(self)} × {tuple(self.images.shape[1:])}, {self.num_classes} classes)"


def split(full: ArrayDataset, val_fraction: float, seed: int,
          train_transform: Transform | None = None) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Carve a seeded random validation set out of a training set.

    Validation keeps ``full``'s own transform (normalization); only training gets ``train_transform``.
    """
    if not 0 <= val_fraction < 1:
        raise PruneError(f"val_fraction must be in [0, 1) (got {val_fraction})")
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * len(full)))
    train = full.subset(perm[n_val:].sort().values, train_transform or full.transform)
    val = full.subset(perm[:n_val].sort().values) if n_val else None
    return train, val


def batches(data: Dataset | DataLoader, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` batches of any dataset or DataLoader; ArrayDatasets are sliced without a DataLoader."""
    if isinstance(data, DataLoader):
        yield from data
        return
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if isinstance(data, ArrayDataset):
        for start in range(0, n, batch_size):
            yield data.batch(order[start:start + batch_size])
        return
    yield from DataLoader(data, batch_size=batch_size, sampler=order.tolist())


def num_batches(data: Dataset | DataLoader, batch_size: int) -> int:
    """How many batches :func:`batches` yields per pass."""
    return len(data) if isinstance(data, DataLoader) else -(-len(data) // batch_size)
