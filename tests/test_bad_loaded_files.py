"""Class 2 of issue 17: files that parse but claim something wrong are refused, never loaded wrong.

Crafted files carry a valid digest (written with ``safefiles.write``), so only the checks of what
each field claims — index ranges, dtypes, shapes, counts — stand between them and a wrong model.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit import safefiles
from prunekit.sparse.storage import FORMAT

SEP = "::"


def layer() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(4, 3, bias=False)


def write_sparse(path: Path, tensors: dict, layout: dict) -> None:
    safefiles.write(path, tensors, {"format": FORMAT, "layout": json.dumps(layout)})


def csr(crow, col, values, shape=(3, 4)) -> tuple[dict, dict]:
    tensors = {f"weight{SEP}crow": torch.tensor(crow, dtype=torch.uint8),
               f"weight{SEP}col": torch.tensor(col, dtype=torch.uint8),
               f"weight{SEP}values": torch.tensor(values, dtype=torch.float32)}
    return tensors, {"weight": {"encoding": "csr", "shape": list(shape), "dtype": "float32"}}


def test_valid_crafted_csr_loads(tmp_path):
    """The crafted format itself is right: a consistent file loads to the weights it encodes."""
    write_sparse(tmp_path / "ok.safetensors", *csr([0, 1, 1, 2], [2, 3], [1.0, 2.0]))
    model = pk.load(tmp_path / "ok.safetensors", layer())
    want = torch.zeros(3, 4)
    want[0, 2], want[2, 3] = 1.0, 2.0
    assert torch.equal(model.weight.detach(), want)


@pytest.mark.parametrize("crow, col, values, what", [
    ([0, 1, 1, 2], [2, 4], [1.0, 2.0], "column index outside 0..3"),     # col 4 would land in the next row
    ([0, 2, 1, 2], [2, 3], [1.0, 2.0], "row pointer"),                   # decreasing row pointer
    ([0, 1, 1, 3], [2, 3], [1.0, 2.0], "row pointer"),                   # pointer past the indices
    ([0, 1], [2], [1.0], "row pointer"),                                 # too few rows
    ([0, 2, 2, 2], [3, 1], [1.0, 2.0], "repeats or unorders"),          # unordered columns in a row
    ([0, 2, 2, 2], [1, 1], [1.0, 2.0], "repeats or unorders"),          # one position twice
    ([0, 1, 1, 2], [2, 3], [1.0], "holds 1 values but the mask keeps 2"),
])
def test_inconsistent_csr_is_refused(tmp_path, crow, col, values, what):
    path = tmp_path / "bad.safetensors"
    write_sparse(path, *csr(crow, col, values))
    with pytest.raises(pk.StorageFormatError, match=what) as info:
        pk.load(path, layer())
    assert "bad.safetensors" in str(info.value) and "weight" in str(info.value)


@pytest.mark.parametrize("change, what", [
    (lambda t, l: t.update({f"weight{SEP}bits": torch.zeros(5, dtype=torch.uint8)}), "uint8 bytes"),
    (lambda t, l: l["weight"].update(dtype="pickle"), "unknown dtype"),
    (lambda t, l: l["weight"].update(shape=[3, -4]), "invalid shape"),
    (lambda t, l: l["weight"].update(encoding="zip"), "unknown encoding"),
    (lambda t, l: t.pop(f"weight{SEP}values"), "is missing"),
    (lambda t, l: t.update({f"weight{SEP}values": torch.ones(2, 2)}), "1-D"),
])
def test_inconsistent_bitmask_or_layout_is_refused(tmp_path, change, what):
    tensors = {f"weight{SEP}bits": torch.tensor([0b10000000, 0], dtype=torch.uint8),
               f"weight{SEP}values": torch.tensor([1.0])}
    layout = {"weight": {"encoding": "bitmask", "shape": [3, 4], "dtype": "float32"}}
    change(tensors, layout)
    write_sparse(tmp_path / "bad.safetensors", tensors, layout)
    with pytest.raises(pk.StorageFormatError, match=what):
        pk.load(tmp_path / "bad.safetensors", layer())


def test_layout_that_is_not_a_mapping(tmp_path):
    safefiles.write(tmp_path / "bad.safetensors", {}, {"format": FORMAT, "layout": "[1, 2]"})
    with pytest.raises(pk.StorageFormatError, match="layout"):
        pk.load(tmp_path / "bad.safetensors", layer())


def test_a_failed_load_leaves_the_model_as_it_was(tmp_path):
    model = layer()
    pk.prune(model, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = nn.Linear(4, 3, bias=True)
    pk.save(other, tmp_path / "other.safetensors")
    with pytest.raises(pk.StorageFormatError, match="keys only in the file"):
        pk.load(tmp_path / "other.safetensors", model)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_float_weights_are_not_masks(tmp_path):
    from prunekit.masks import MASKS_FORMAT

    safefiles.write(tmp_path / "w.safetensors", {"0.weight": torch.rand(3, 4)}, {"format": MASKS_FORMAT})
    with pytest.raises(pk.MaskMismatchError, match="float32, not a boolean mask"):
        pk.Masks.load(tmp_path / "w.safetensors")
    pk.save(layer(), tmp_path / "model.safetensors")
    with pytest.raises(pk.MaskMismatchError, match="not a masks file"):
        pk.Masks.load(tmp_path / "model.safetensors")


# -- MNIST-style IDX files ------------------------------------------------------------------------------
def _write_idx(path: Path, array: np.ndarray, magic: int, dims: tuple | None = None) -> None:
    dims = array.shape if dims is None else dims
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _mnist(folder: Path, test_size: int = 28) -> None:
    rng = np.random.default_rng(0)
    for prefix, n, size in (("train", 6, 28), ("t10k", 4, test_size)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, size, size)), 2051)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), 2049)


def test_mnist_test_images_of_another_size(tmp_path):
    _mnist(tmp_path, test_size=20)
    with pytest.raises(pk.DataFileError, match="t10k images are 20×20 but training images are 28×28"):
        pk.data.load("mnist", tmp_path)


def test_idx_header_with_zero_rows_and_columns(tmp_path):
    _mnist(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(0), 2051, dims=(6, 0, 0))
    with pytest.raises(pk.DataFileError, match=r"train-images-idx3-ubyte.gz: header claims shape \[6, 0, 0\]"):
        pk.data.load("mnist", tmp_path)


def test_idx_labels_out_of_range(tmp_path):
    _mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 200]), 2049)
    with pytest.raises(pk.DataFileError, match="labels go up to 200"):
        pk.data.load("mnist", tmp_path)
