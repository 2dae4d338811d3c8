"""The Stack Overflow case on real MNIST, small: unit pruning keeps all ten classes; files shrink.

Skips cleanly when the shared datasets folder is absent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from keras_util import keras

import prunekit.keras as pkk  # noqa: E402
from prunekit.data import load  # noqa: E402

CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "datasets", Path("/work/shared/datasets")]


@pytest.fixture(scope="module")
def mnist():
    root = next((p for p in CANDIDATES if (p / "mnist").exists()), None)
    if root is None:
        pytest.skip("shared MNIST files are not present")
    train, _, test = load("mnist", root, val_fraction=0.0)

    def arrays(ds, n):
        x, y = ds.batch(torch.arange(n))
        return x.reshape(n, -1).numpy(), y.numpy()

    return arrays(train, 6000), arrays(test, 2000)


def test_unit_pruning_on_mnist_keeps_every_class_and_compacts(mnist):
    (x, y), (xt, yt) = mnist
    keras.utils.set_random_seed(0)
    L = keras.layers
    m = keras.Sequential([keras.Input((784,)), L.Dense(300, activation="relu"), L.Dense(100, activation="relu"),
                          L.Dense(10)])
    m.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=2, batch_size=128, verbose=0)
    pkk.prune(m, 0.5, structure="units", scope="layer")
    m.fit(x, y, epochs=1, batch_size=128, verbose=0)  # fine-tune with the units held at zero
    small = pkk.compact(m)
    assert [layer.units for layer in small.layers] == [150, 50, 10]
    pred = keras.ops.convert_to_numpy(small(xt)).argmax(1)
    recall = [float((pred[yt == c] == c).mean()) for c in range(10)]
    assert min(recall) > 0.7, recall  # the README recipe of old zeroed classes 3 and 7
    assert (pred == yt).mean() > 0.85
    np.testing.assert_allclose(keras.ops.convert_to_numpy(m(xt)), keras.ops.convert_to_numpy(small(xt)),
                               rtol=1e-4, atol=1e-4)
