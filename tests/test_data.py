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
