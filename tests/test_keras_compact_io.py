"""compact keeps outputs, save/load is exact and small, summary counts what was gained."""
from __future__ import annotations

import numpy as np
import pytest

from keras_util import L, blobs, keras, mlp, values

import prunekit.keras as pkk  # noqa: E402
from prunekit.errors import CompactionError, StorageFormatError  # noqa: E402


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_compact_dense_keeps_outputs_and_removes_units():
    x, y = blobs(256)
    m = mlp(sizes=(20, 64, 32, 10))
    m.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=2, batch_size=64, verbose=0)
    pkk.prune(m, 0.5, structure="units", scope="layer")
    small = pkk.compact(m)
    assert [layer.units for layer in small.layers] == [32, 16, 10]
    rebuilt = m.__class__.from_config(m.get_config())  # lists each consumer twice in its graph
    rebuilt.set_weights(m.get_weights())
    assert [layer.units for layer in pkk.compact(rebuilt).layers] == [32, 16, 10]
    assert small.count_params() == 20 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    np.testing.assert_allclose(predict(small, x), predict(m, x), rtol=1e-5, atol=1e-5)


def test_compact_folds_constant_outputs_through_sigmoid_and_batchnorm():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((12,)), L.Dense(16, activation="sigmoid"), L.Dropout(0.3),
                          L.BatchNormalization(), L.Dense(8, activation="relu"), L.Dense(3)])
    bn = m.layers[2]
    bn.set_weights([np.random.default_rng(i).uniform(0.5, 1.5, 16).astype("float32") for i in range(4)])
    pkk.prune(m, 0.5, structure="units", scope="layer")  # dead sigmoid units output 0.5, not 0
    small = pkk.compact(m)
    x = np.random.default_rng(1).normal(size=(32, 12)).astype("float32")
    assert small.layers[0].units == 8 and small.layers[2].weights[0].shape == (8,)
    np.testing.assert_allclose(predict(small, x), predict(m, x), rtol=1e-5, atol=1e-5)


def test_compact_conv_through_pooling_and_flatten_keeps_outputs_and_masks():
    keras.utils.set_random_seed(0)
    i = keras.Input((10, 10, 3))
    h = L.Conv2D(8, 3, activation="relu")(i)
    h = L.Conv2D(6, 3, activation="relu", padding="same")(h)
    h = L.Flatten()(L.MaxPooling2D()(h))
    m = keras.Model(i, L.Dense(4)(L.Dense(12, activation="relu")(h)))
    pkk.prune(m, 0.5, structure="units", scope="layer")
    pkk.prune(m, 0.7, exclude=[L.Conv2D])  # plus unstructured sparsity in the Dense layers
    small = pkk.compact(m)
    x = np.random.default_rng(0).normal(size=(4, 10, 10, 3)).astype("float32")
    np.testing.assert_allclose(predict(small, x), predict(m, x), rtol=1e-5, atol=1e-5)
    assert small.count_params() < m.count_params()
    assert [layer.filters for layer in small.layers if isinstance(layer, L.Conv2D)] == [4, 3]
    kept = pkk.masks(small)  # the Dense kernels' masks carried over, sliced; the convs' held only removed units
    dense = [layer for layer in small.layers if isinstance(layer, L.Dense)]
    assert sorted(kept) == sorted(layer.kernel.path for layer in dense)
    assert all((values(layer.kernel)[~kept[layer.kernel.path]] == 0).all() for layer in dense)
    assert all((~mask).any() for mask in kept.values())


def test_compact_refuses_a_coupling_it_cannot_resolve():
    keras.utils.set_random_seed(0)
    i = keras.Input((8,))
    a = L.Dense(8, activation="relu")(i)
    b = L.Dense(8, activation="relu")(i)
    m = keras.Model(i, L.Dense(2)(L.Add()([a, b])))
    pkk.prune(m, 0.5, structure="units", scope="layer")
    with pytest.raises(CompactionError, match="Add"):
        pkk.compact(m)


def test_save_load_round_trip_is_exact_and_smaller_than_keras(tmp_path):
    keras.utils.set_random_seed(0)
    m = mlp(sizes=(784, 300, 100, 10))
    pkk.prune(m, 0.9)
    encodings = pkk.save(m, tmp_path / "m.safetensors")
    m.save(tmp_path / "m.keras")
    ours, theirs = (tmp_path / "m.safetensors").stat().st_size, (tmp_path / "m.keras").stat().st_size
    assert set(encodings.values()) <= {"bitmask", "csr"} and len(encodings) == 3
    assert ours < 0.2 * theirs, (ours, theirs)
    back = pkk.load(tmp_path / "m.safetensors")
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), back.get_weights()))
    x = np.random.default_rng(0).normal(size=(8, 784)).astype("float32")
    np.testing.assert_array_equal(predict(back, x), predict(m, x))
    # the masks come back too and hold through training
    assert [v.sum() for v in pkk.masks(back).values()] == [v.sum() for v in pkk.masks(m).values()]
    back.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    back.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
    assert pkk.sparsity(back) == pkk.sparsity(m)


def test_save_load_a_compacted_model(tmp_path):
    m = mlp()
    pkk.prune(m, 0.5, structure="units", scope="layer")
    small = pkk.compact(m)
    pkk.save(small, tmp_path / "s.safetensors")
    back = pkk.load(tmp_path / "s.safetensors")
    assert [layer.units for layer in back.layers] == [16, 8, 10]
    x = np.random.default_rng(0).normal(size=(4, 20)).astype("float32")
    np.testing.assert_allclose(predict(back, x), predict(m, x), rtol=1e-5, atol=1e-5)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.keras"
    mlp().save(bad)
    with pytest.raises(StorageFormatError):
        pkk.load(bad)


def test_summary_counts_params_nonzeros_and_macs():
    m = mlp(sizes=(784, 300, 100, 10))
    dense = pkk.summary(m)
    assert dense.macs == 784 * 300 + 300 * 100 + 100 * 10 == dense.nonzero_macs
    pkk.prune(m, 0.9)
    s = pkk.summary(m)
    zeros = round(0.9 * dense.macs)
    assert s.nonzero_macs == dense.macs - zeros and s.nonzeros == s.params - zeros
    assert "→" in str(s) and s.mac_reduction == pytest.approx(dense.macs / (dense.macs - zeros))
    pkk.unprune(m)
    m2 = mlp(sizes=(784, 300, 100, 10))
    pkk.prune(m2, 0.5, structure="units", scope="layer")
    small = pkk.compact(m2)
    c = pkk.summary(small, baseline=m2)
    assert c.macs == 784 * 150 + 150 * 50 + 50 * 10 and c.before_macs == dense.macs


def test_summary_counts_conv_positions():
    i = keras.Input((8, 8, 3))
    m = keras.Model(i, L.Conv2D(4, 3)(i))
    assert pkk.summary(m).macs == 3 * 3 * 3 * 4 * 6 * 6
