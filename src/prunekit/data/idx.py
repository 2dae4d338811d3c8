"""MNIST and Fashion-MNIST from their original IDX ``.gz`` files (magic numbers and counts checked)."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataFileError
from .base import ArrayDataset
from .transforms import Normalize

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049

# name -> (sub-folders tried under root, mean, std of the training pixels in [0, 1], class names)
SETS = {
    "mnist": (("mnist", "MNIST/raw"), 0.1307, 0.3081, tuple(str(i) for i in range(10))),
    "fashion-mnist": (("fashion-mnist", "FashionMNIST/raw"), 0.2860, 0.3530,
                      ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                       "Sneaker", "Bag", "Ankle boot")),
}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array: images ``(n, rows, cols)`` (magic 2051) or labels ``(n,)`` (magic 2049), uint8."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a bad deflate stream, zlib.error
        raise DataFileError(f"{path} is not a readable gzip IDX file ({exc}); download it again") from None
    found = int.from_bytes(raw[0:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise DataFileError(f"{path}: magic number {found}, expected {magic}; is this the right file?")
    ndim = 3 if magic == IMAGES_MAGIC else 1
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(raw) < offset or 0 in dims:
        raise DataFileError(f"{path}: header claims shape {dims}; an IDX file needs a full header and no "
                            "empty dimension — download it again")
    if len(raw) != offset + int(np.prod(dims)):
        raise DataFileError(f"{path}: header says {dims} but the file holds {len(raw) - offset} bytes of data; "
                            "it is truncated or corrupt, download it again")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def _folder(root: Path, name: str) -> Path:
    for sub in ("", *SETS[name][0]):
        if all((root / sub / f).is_file() or (root / sub / f[:-3]).is_file() for f in FILES):
            return root / sub
    raise DataFileError(
        f"{name}: expected the files {', '.join(FILES)} in {root} (or its {' or '.join(SETS[name][0])} "
        f"sub-folder); download the original IDX files there"
    )


def _pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    def path(f: str) -> Path:
        return folder / f if (folder / f).is_file() else folder / f[:-3]

    images = read_idx(path(f"{prefix}-images-idx3-ubyte.gz"), IMAGES_MAGIC)
    labels = read_idx(path(f"{prefix}-labels-idx1-ubyte.gz"), LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataFileError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{folder}: {prefix} labels go up to {labels.max()}, expected 0..9")
    return images, labels


def load_idx_set(name: str, root: Path) -> tuple[ArrayDataset, ArrayDataset, None]:
    """(official train, official test, no augmentation); images stay uint8, normalized per batch."""
    folder = _folder(root, name)
    _, mean, std, classes = SETS[name]
    norm = Normalize((mean,), (std,))
    out = []
    for prefix in ("train", "t10k"):
        images, labels = _pair(folder, prefix)
        if out and images.shape[1:] != tuple(out[0].images.shape[2:]):
            raise DataFileError(f"{folder}: {prefix} images are {images.shape[1]}×{images.shape[2]} but training "
                                f"images are {out[0].images.shape[2]}×{out[0].images.shape[3]}; the files are "
                                "from different datasets")
        out.append(ArrayDataset(torch.from_numpy(images.copy()).unsqueeze(1),
                                torch.from_numpy(labels.astype(np.int64)), norm, classes))
    return out[0], out[1], None
