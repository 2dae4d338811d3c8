"""Datasets: built-in digits and synthetic sets, the validation split, batching."""
from __future__ import annotations

import pytest
import torch

import prunekit as pk
from prunekit.data import ArrayDataset, batches


def test_digits_shapes_and_split():
    train, val, test = pk.data.load("digits")
    assert len(train) + len(val) + len(test) == 1797
    assert len(val) == round(0.1 * (len(train) + len(val)))
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and train.num_classes == 10
    rows = lambda d: {tuple(r.flatten().tolist()) + (int(l),) for r, l in zip(d.images, d.labels)}  # noqa: E731
    assert len(rows(val) & rows(test)) <= 5  # only exact duplicate images in the raw data may coincide


def test_split_is_seeded_and_test_fixed():
    a = pk.data.load("digits", seed=0)
    b = pk.data.load("digits", seed=0)
    c = pk.data.load("digits", seed=1)
    assert torch.equal(a[1].images, b[1].images)
    assert not torch.equal(a[1].images, c[1].images)
    assert torch.equal(a[2].images, c[2].images)  # the test set never depends on the seed
    train, val, _ = pk.data.load("digits", val_fraction=0)
    assert val is None and len(train) == len(a[0]) + len(a[1])
    with pytest.raises(pk.PruneError):
        pk.data.load("digits", val_fraction=1.0)


def test_synthetic_is_seeded_and_learnable_shape():
    t1, v1, s1 = pk.data.load("synthetic", seed=3)
    t2, _, _ = pk.data.load("synthetic", seed=3)
    assert torch.equal(t1.images, t2.images) and t1.images.shape[1:] == (1, 8, 8)
    assert len(t1) + len(v1) == 1000 and len(s1) == 200


def test_unknown_dataset():
    with pytest.raises(pk.UnknownNameError, match="digits"):
        pk.data.load("imagenet")


def test_batches_cover_every_example_once():
    ds = ArrayDataset(torch.arange(10.0)[:, None], torch.arange(10))
    gen = torch.Generator().manual_seed(0)
    got = torch.cat([y for _, y in batches(ds, 3, shuffle=True, generator=gen)])
    assert sorted(got.tolist()) == list(range(10)) and got.tolist() != list(range(10))
    plain = torch.utils.data.TensorDataset(torch.arange(10.0)[:, None], torch.arange(10))
    assert [len(y) for _, y in batches(plain, 4)] == [4, 4, 2]


# ---- IDX (MNIST / Fashion-MNIST) ---------------------------------------------------------------

import gzip  # noqa: E402
import io  # noqa: E402
import pickle  # noqa: E402
import tarfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from prunekit.data.idx import FILES  # noqa: E402
from prunekit.data.transforms import RandomCropFlip  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(folder: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[prefix] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", arrays[prefix][0], 2051)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", arrays[prefix][1], 2049)
    return arrays


@pytest.mark.parametrize("name,sub", [("mnist", ""), ("mnist", "mnist"), ("fashion-mnist", "FashionMNIST/raw")])
def test_idx_loader_on_generated_files(tmp_path, name, sub):
    arrays = _fake_mnist(tmp_path / sub)
    train, val, test = pk.data.load(name, tmp_path, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (40, 10, 20)
    assert torch.equal(test.images[:, 0], torch.from_numpy(arrays["t10k"][0].astype(np.uint8)))
    assert torch.equal(test.labels, torch.from_numpy(arrays["t10k"][1]).long())
    x, _ = test.batch(torch.arange(3))
    mean, std = (0.1307, 0.3081) if name == "mnist" else (0.2860, 0.3530)
    expected = (torch.from_numpy(arrays["t10k"][0][:3].astype(np.float32)) / 255 - mean) / std
    assert x.dtype == torch.float32 and torch.allclose(x[:, 0], expected, atol=1e-6)


def test_idx_missing_and_corrupt_files_name_the_files(tmp_path):
    with pytest.raises(pk.DataFileError, match="train-images-idx3-ubyte.gz"):
        pk.data.load("mnist", tmp_path)
    with pytest.raises(pk.DataFileError, match="root"):
        pk.data.load("mnist")
    _fake_mnist(tmp_path)
    labels = np.zeros(50, np.uint8)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 2051)  # wrong magic
    with pytest.raises(pk.DataFileError, match="magic number 2051, expected 2049"):
        pk.data.load("mnist", tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:49], 2049)  # count mismatch
    with pytest.raises(pk.DataFileError, match="50 train images but 49 labels"):
        pk.data.load("mnist", tmp_path)
    raw = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-5]))  # truncated payload
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 2049)
    with pytest.raises(pk.DataFileError, match="truncated"):
        pk.data.load("mnist", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(pk.DataFileError, match="gzip"):
        pk.data.load("mnist", tmp_path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets not present")
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_counts_and_shapes(name):
    train, val, test = pk.data.load(name, SHARED)
    assert (len(train) + len(val), len(val), len(test)) == (60000, 6000, 10000)
    assert train.images.shape[1:] == (1, 28, 28) and test.images.dtype == torch.uint8
    counts = torch.bincount(test.labels, minlength=10).tolist()
    assert counts == ([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist" else [1000] * 10)
    full = torch.cat([train.images, val.images]).float() / 255
    assert full.mean().item() == pytest.approx(0.1307 if name == "mnist" else 0.2860, abs=1e-4)


# ---- CIFAR-10 -------------------------------------------------------------------------------------

def _cifar_batch(n: int, rng) -> tuple[bytes, np.ndarray, list]:
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    d = {b"batch_label": b"batch", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
    return pickle.dumps(d, protocol=2), data, labels


def _fake_cifar(root: Path, archive: bool) -> dict:
    rng = np.random.default_rng(0)
    files = {name: _cifar_batch(6 if name != "test_batch" else 4, rng)
             for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, (raw, _, _) in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        (root / "cifar-10-batches-py").mkdir()
        for name, (raw, _, _) in files.items():
            (root / "cifar-10-batches-py" / name).write_bytes(raw)
    return files


@pytest.mark.parametrize("archive", [False, True])
def test_cifar_loader_on_generated_batches(tmp_path, archive):
    files = _fake_cifar(tmp_path, archive)
    train, val, test = pk.data.load("cifar10", tmp_path, val_fraction=0.2, augment=False)
    assert (len(train), len(val), len(test)) == (24, 6, 4)
    _, data, labels = files["test_batch"]
    assert torch.equal(test.images, torch.from_numpy(data.reshape(4, 3, 32, 32)))
    assert test.labels.tolist() == labels
    x, _ = test.batch(torch.arange(4))
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.allclose(x, (torch.from_numpy(data.reshape(4, 3, 32, 32)).float() / 255 - mean) / std)
    aug_train, aug_val, _ = pk.data.load("cifar10", tmp_path, val_fraction=0.2)
    assert aug_train.transform is not aug_val.transform and torch.equal(aug_val.batch(torch.arange(6))[0],
                                                                          val.batch(torch.arange(6))[0])


def test_cifar_refuses_foreign_pickles_and_names_files(tmp_path):
    with pytest.raises(pk.DataFileError, match="cifar-10-python.tar.gz"):
        pk.data.load("cifar10", tmp_path)
    _fake_cifar(tmp_path, archive=False)

    class Boom:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Boom()}, protocol=2))
    with pytest.raises(pk.DataFileError, match="refusing to load"):
        pk.data.load("cifar10", tmp_path)


def test_random_crop_flip_is_a_shifted_window():
    torch.manual_seed(0)
    x = torch.arange(1, 2 * 3 * 32 * 32 + 1, dtype=torch.float32).reshape(2, 3, 32, 32)  # no zeros
    out = RandomCropFlip(pad=4, fill=torch.tensor([-1.0, -2.0, -3.0]))(x.repeat(20, 1, 1, 1))
    assert out.shape == (40, 3, 32, 32)
    flips = 0
    for i in range(40):
        img, src = out[i], x[i % 2]
        padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
        padded[:, :4] = padded[:, -4:] = padded[:, :, :4] = padded[:, :, -4:] = 0
        padded += torch.tensor([-1.0, -2.0, -3.0])[:, None, None] * (padded == 0)
        match = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                 if torch.equal(img.flip(2) if f else img, padded[:, dy:dy + 32, dx:dx + 32])]
        assert match, i
        flips += match[0][2]
    assert 5 < flips < 35
