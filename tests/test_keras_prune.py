"""prunekit.keras.prune: exact counts, structures, scopes, output safety and clear errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from keras_util import L, blobs, keras, mixed, mlp, values  # noqa: F401  (sets KERAS_BACKEND first)

import prunekit.keras as pkk  # noqa: E402
from prunekit import PruneError  # noqa: E402
from prunekit.errors import InvalidSparsityError, UnknownNameError, UnsupportedLayerError  # noqa: E402
from prunekit.keras import UnbuiltModelError  # noqa: E402


@pytest.mark.parametrize("s", [0.0, 0.3, 0.9, 0.97])
def test_global_weight_sparsity_is_exact(s):
    m = mlp()
    pkk.prune(m, s)
    n = 20 * 32 + 32 * 16 + 16 * 10
    zeros = sum(int((values(layer.kernel) == 0).sum()) for layer in m.layers)
    assert zeros == round(s * n)
    assert pkk.sparsity(m) == round(s * n) / n


def test_layer_scope_prunes_each_kernel_exactly_and_keeps_biases():
    m = mlp()
    m.layers[0].bias.assign(np.ones(32, "float32"))
    pkk.prune(m, 0.7, scope="layer")
    for layer in m.layers:
        k = values(layer.kernel)
        assert int((k == 0).sum()) == round(0.7 * k.size)
    assert (values(m.layers[0].bias) == 1).all()


def test_ties_are_deterministic_lower_index_first():
    m = mlp(sizes=(4, 4, 2))
    for layer in m.layers:
        layer.kernel.assign(np.ones(layer.kernel.shape, "float32"))
    pkk.prune(m, 0.5)  # 24 equal weights, 12 go: the first 12 in model order (earlier kernel, lower index)
    first = values(m.layers[0].kernel).reshape(-1)
    assert (first[:12] == 0).all() and (first[12:] == 1).all()
    assert (values(m.layers[1].kernel) == 1).all()


def test_magnitude_removes_the_smallest_weights():
    m = mlp()
    before = np.concatenate([values(layer.kernel).reshape(-1) for layer in m.layers])
    pkk.prune(m, 0.5)
    after = np.concatenate([values(layer.kernel).reshape(-1) for layer in m.layers])
    assert np.abs(before[after == 0]).max() <= np.abs(before[after != 0]).min()


def test_random_score_is_seeded_and_exact():
    a, b, c = mlp(), mlp(), mlp()
    for model, seed in ((a, 1), (b, 1), (c, 2)):
        pkk.prune(model, 0.5, score="random", seed=seed)
    ma, mb, mc = (list(pkk.masks(x).values()) for x in (a, b, c))  # paths differ: model names are unique
    assert all(np.array_equal(u, v) for u, v in zip(ma, mb))
    assert any(not np.array_equal(u, v) for u, v in zip(ma, mc))
    assert sum(int((~v).sum()) for v in ma) == round(0.5 * 1312)


def test_pruning_again_only_removes_more():
    m = mlp()
    first = pkk.prune(m, 0.5, score="random")
    second = pkk.prune(m, 0.8)
    assert all((second[k] <= first[k]).all() for k in first)
    with pytest.raises(InvalidSparsityError, match="unprune"):
        pkk.prune(m, 0.3)


def test_every_supported_layer_kind_is_pruned_exactly():
    m = mixed()
    masks = pkk.prune(m, 0.6)
    kinds = (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv2D, L.Dense)
    layers = [layer for layer in m.layers if isinstance(layer, kinds)]
    assert len(layers) == 6 and all(layer.kernel.path in masks for layer in layers)
    cells = [layer.cell for layer in m.layers if isinstance(layer, (L.LSTM, L.GRU))]
    assert all(c.kernel.path in masks and c.recurrent_kernel.path in masks for c in cells) and len(cells) == 2
    n = sum(v.size for v in masks.values())
    assert sum(int((~v).sum()) for v in masks.values()) == round(0.6 * n)
    assert pkk.sparsity(m) == pytest.approx(round(0.6 * n) / n)


def test_units_remove_whole_units_with_bias_and_keep_outputs():
    m = mlp()
    for layer in m.layers:
        layer.bias.assign(np.ones(layer.bias.shape, "float32"))
    pkk.prune(m, 0.5, structure="units", scope="layer")
    for layer, n in zip(m.layers[:2], (32, 16)):
        k, b = values(layer.kernel), values(layer.bias)
        dead = (k == 0).all(axis=0)
        assert dead.sum() == n // 2 and (b[dead] == 0).all() and (b[~dead] == 1).all()
    assert (values(m.layers[-1].kernel) != 0).all(axis=0).all()  # the 10 output units are untouched


def test_unit_pruning_keeps_every_output_class():
    x, y = blobs()
    m = mlp(sizes=(20, 64, 10))
    m.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=10, batch_size=64, verbose=0)
    pkk.prune(m, 0.5, structure="units", scope="layer")  # half of every layer's units — but not the outputs'
    assert not (values(m.layers[-1].kernel) == 0).all(axis=0).any()
    pred = np.argmax(keras.ops.convert_to_numpy(m(x)), axis=1)
    assert set(pred.tolist()) == set(range(10))


def test_output_units_are_pruned_when_named():
    m = mlp()
    out = m.layers[-1].name
    masks = pkk.prune(m, 0.5, structure="units", outputs=[out])
    assert any(out in p for p in masks)
    with pytest.raises(UnknownNameError):
        pkk.prune(mlp(), 0.5, structure="units", outputs=["nope"])


def test_two_four_keeps_two_of_every_four_inputs():
    m = mlp(sizes=(20, 32, 16, 10))
    pkk.prune(m, structure="2:4")
    for layer in m.layers:
        k = values(layer.kernel)  # (in, out): blocks of 4 consecutive inputs per output unit
        blocks = (k != 0).T.reshape(k.shape[1], -1, 4).sum(-1)
        assert (blocks == 2).all()
    with pytest.raises(UnsupportedLayerError, match="multiple of 4"):
        pkk.prune(mlp(sizes=(6, 8, 2)), structure="2:4")


def test_exclude_by_name_and_type():
    m = mlp()
    pkk.prune(m, 0.5, exclude=[m.layers[0].name])
    assert (values(m.layers[0].kernel) != 0).all()
    m2 = mixed()
    masks = pkk.prune(m2, 0.5, exclude=[L.LSTM, L.GRU, "*conv*"])
    assert not any("cell" in p or "conv" in p for p in masks)
    with pytest.raises(UnknownNameError, match="matches no layer"):
        pkk.prune(mlp(), 0.5, exclude=["no_such_layer"])


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.5", None])
def test_bad_sparsity_is_a_clear_error(bad):
    with pytest.raises(InvalidSparsityError, match="sparsity"):
        pkk.prune(mlp(), bad)


def test_unsupported_layers_and_names_are_clear_errors():
    with pytest.raises(UnsupportedLayerError, match="structure='weights'"):
        pkk.prune(mixed(), 0.5, structure="units")
    with pytest.raises(UnsupportedLayerError, match="depthwise"):
        pkk.prune(mixed(), structure="2:4")
    emb = keras.Sequential([keras.Input((4,), dtype="int32"), L.Embedding(10, 4), L.LayerNormalization()])
    with pytest.raises(PruneError, match="no prunable layer"):
        pkk.prune(emb, 0.5)
    with pytest.raises(UnknownNameError):
        pkk.prune(mlp(), 0.5, score="gradient")
    with pytest.raises(UnknownNameError):
        pkk.prune(mlp(), 0.5, structure="channels")


def test_unbuilt_model_is_a_clear_error():
    m = keras.Sequential([L.Dense(8), L.Dense(2)])
    with pytest.raises(UnbuiltModelError, match="not built"):
        pkk.prune(m, 0.5)
    assert isinstance(UnbuiltModelError("x"), PruneError)


def test_import_prunekit_does_not_import_keras():
    code = "import sys, prunekit; assert 'keras' not in sys.modules, 'keras imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_compression_is_all_params_over_nonzeros():
    m = mlp()
    for layer in m.layers:  # nonzero biases, so only the pruned kernels hold zeros
        layer.bias.assign(np.ones(layer.bias.shape, "float32"))
    pkk.prune(m, compression=4)
    total = sum(int(np.prod(v.shape)) for v in m.weights)
    nonzero = sum(int(np.count_nonzero(values(v))) for v in m.weights)
    assert abs(nonzero - total / 4) <= 1  # within one weight of total / compression (exact counts round)
    with pytest.raises(InvalidSparsityError):
        pkk.prune(mlp(), compression=0.5)
