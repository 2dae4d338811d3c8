"""Masks hold through model.fit with any optimizer; schedules prune to their targets exactly."""
from __future__ import annotations

import numpy as np
import pytest

from keras_util import blobs, keras, mlp, values

import prunekit.keras as pkk  # noqa: E402
from prunekit.errors import PruneError  # noqa: E402

OPTIMIZERS = {
    "sgd-momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.05),
}
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_masks_survive_fit(opt):
    x, y = blobs(256)
    m = mlp()
    m.compile(OPTIMIZERS[opt](), LOSS)
    m.fit(x, y, epochs=1, batch_size=64, verbose=0)  # optimizer state (momentum, Adam moments) for every weight
    masks = pkk.prune(m, 0.8)
    before = {p: values(v) for v, p in ((layer.kernel, layer.kernel.path) for layer in m.layers)}
    m.fit(x, y, epochs=2, batch_size=64, verbose=0)  # no callback: the masks' constraints alone hold them
    for layer in m.layers:
        k = values(layer.kernel)
        mask = masks[layer.kernel.path]
        assert (k[~mask] == 0).all()
        assert not np.array_equal(k[mask], before[layer.kernel.path][mask])  # survivors did train
    assert pkk.sparsity(m) == round(0.8 * 1312) / 1312


def test_unit_masks_survive_fit_with_their_biases():
    x, y = blobs(256)
    m = mlp()
    m.compile(keras.optimizers.AdamW(1e-2, weight_decay=0.05), LOSS)
    masks = pkk.prune(m, 0.5, structure="units", scope="layer")
    m.fit(x, y, epochs=2, batch_size=64, verbose=0)
    for layer in m.layers[:2]:
        dead = ~masks[layer.kernel.path].all(axis=0)
        assert (values(layer.kernel)[:, dead] == 0).all() and (values(layer.bias)[dead] == 0).all()


def test_gradual_schedule_reaches_its_target_exactly():
    x, y = blobs(320)  # 5 steps per epoch at batch 64
    m = mlp()
    m.compile(keras.optimizers.Adam(1e-2), LOSS)
    schedule = pkk.gradual(0.85, start=1, every=2, n=4, initial=0.1)
    plan = schedule.plan()
    cb = pkk.PruningCallback(schedule)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(pkk.sparsity(self.model))

    m.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[cb, Probe()])
    assert [t for t, _ in plan] == [1, 3, 5, 7, 9]
    assert plan[0][1] == pytest.approx(0.1) and plan[-1][1] == 0.85
    assert cb.history == plan
    n = 1312
    for step in range(1, len(seen) + 1):  # after each step: exactly round(s × N) zeros of the last prune so far
        s = max(v for t, v in plan if t <= step)
        assert seen[step - 1] == round(s * n) / n, step
    assert seen[-1] == round(0.85 * n) / n and pkk.sparsity(m) == round(0.85 * n) / n
    # a TF-MOT style PolynomialDecay maps onto the same schedule
    assert pkk.polynomial_decay(0.1, 0.85, begin_step=1, end_step=9, frequency=2).plan() == plan


def test_oneshot_at_epoch_and_iterative_rounds():
    x, y = blobs(256)  # 4 steps per epoch
    m = mlp()
    m.compile(keras.optimizers.SGD(0.05, momentum=0.9), LOSS)
    once = pkk.PruningCallback(pkk.oneshot(0.6, epoch=1))
    m.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[once])
    assert once.history == [(4, 0.6)]
    m2 = mlp()
    m2.compile(keras.optimizers.Adam(1e-2), LOSS)
    rounds = pkk.PruningCallback(pkk.iterative(0.9, rounds=3, every_epochs=1), structure="weights", scope="layer")
    m2.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[rounds])
    assert [t for t, _ in rounds.history] == [0, 4, 8]
    assert rounds.history[-1][1] == 0.9 and pkk.sparsity(m2) == pytest.approx(0.9, abs=1e-3)
    with pytest.raises(PruneError):
        pkk.polynomial_decay(0.0, 0.9, begin_step=0, end_step=10, frequency=3)


def test_unprune_releases_the_weights():
    x, y = blobs(128)
    m = mlp()
    m.compile(keras.optimizers.Adam(1e-2), LOSS)
    pkk.prune(m, 0.9)
    pkk.unprune(m)
    m.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert pkk.sparsity(m) < 0.5 and pkk.masks(m) == {}
