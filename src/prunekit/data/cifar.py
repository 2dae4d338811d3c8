"""CIFAR-10 from its python batches (a folder or the ``.tar.gz``), unpickled by a restricted reader."""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataFileError
from .base import ArrayDataset
from .transforms import Compose, Normalize, RandomCropFlip

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = "test_batch"
# The constants the pretrained ResNets in shared/models/cifar10-resnet were trained with (ImageNet's).
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    import _codecs

    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): _codecs.encode}


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the numpy array globals a CIFAR batch needs; anything else is refused."""

    allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N×3×32×32 uint8, labels N) from one pickled batch."""
    try:
        d = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data, labels = d[b"data"], np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a CIFAR batch
        raise DataFileError(f"{where} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFileError(f"{where}: b'data' must be a uint8 array N×3072")
    if len(labels) != len(data) or (labels.size and not 0 <= labels.min() <= labels.max() <= 9):
        raise DataFileError(f"{where}: {len(data)} images but {len(labels)} labels, or labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _read_all(root: Path) -> dict[str, bytes]:
    names = (*TRAIN, TEST)
    for folder in (root / FOLDER, root):
        if all((folder / n).is_file() for n in names):
            return {n: (folder / n).read_bytes() for n in names}
    for archive in (root / ARCHIVE, root):
        if archive.is_file() and (archive.name == ARCHIVE or tarfile.is_tarfile(archive)):
            found = _read_archive(archive, names)
            if found is not None:
                return found
    raise DataFileError(f"cifar10: expected {FOLDER}/ holding {', '.join(names)}, or {ARCHIVE}, in {root}; "
                        "download the CIFAR-10 python version there")


def _read_archive(archive: Path, names: tuple[str, ...]) -> dict[str, bytes] | None:
    """The named batches from a ``.tar.gz``, or None when it lacks them; a damaged archive is an error."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if not all(n in members for n in names):
                return None
            return {n: tar.extractfile(members[n]).read() for n in names}
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataFileError(f"{archive} is not a readable .tar.gz ({type(exc).__name__}: {exc}); it is truncated "
                            "or not gzip — download the CIFAR-10 python version again") from None


def load_cifar10(root: Path, augment: bool = True) -> tuple[ArrayDataset, ArrayDataset, object]:
    """(train, test, train transform): uint8 images normalized per batch; crop(pad 4) + flip for training."""
    raw = _read_all(root)
    parts = [read_batch(raw[n], n) for n in TRAIN]
    test = read_batch(raw[TEST], TEST)
    norm = Normalize(MEAN, STD)

    def dataset(images: np.ndarray, labels: np.ndarray) -> ArrayDataset:
        return ArrayDataset(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), norm, CLASSES)

    train = dataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    augmentation = Compose(norm, RandomCropFlip(4, True, norm.black)) if augment else None
    return train, dataset(*test), augmentation
