"""Shared bits of the Keras tests: the backend (torch unless KERAS_BACKEND says otherwise) and small models."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import numpy as np
import pytest

keras = pytest.importorskip("keras")
L = keras.layers


def mlp(seed: int = 0, sizes=(20, 32, 16, 10), activation: str = "relu"):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))] + [L.Dense(n, activation=activation) for n in sizes[1:-1]]
    return keras.Sequential(layers + [L.Dense(sizes[-1])])


def mixed(seed: int = 0):
    """Conv1D/2D/3D, DepthwiseConv2D, LSTM, GRU and Dense in one functional model."""
    keras.utils.set_random_seed(seed)
    img, seq, vol = keras.Input((8, 8, 4)), keras.Input((5, 8)), keras.Input((4, 4, 4, 4))
    a = L.Conv2D(8, 3, activation="relu")(img)
    a = L.DepthwiseConv2D(3, depth_multiplier=2, activation="relu")(a)
    a = L.GlobalAveragePooling2D()(a)
    b = L.Conv1D(8, 2, activation="relu")(seq)
    b = L.LSTM(8, return_sequences=True)(b)
    b = L.GRU(8)(b)
    c = L.GlobalAveragePooling3D()(L.Conv3D(4, 2, activation="relu")(vol))
    h = L.Concatenate()([a, b, c])
    out = L.Dense(3)(L.Dense(16, activation="relu")(h))
    return keras.Model([img, seq, vol], out)


def blobs(n: int = 512, d: int = 20, classes: int = 10, seed: int = 0):
    """Separable Gaussian blobs: a tiny classification task every class of which can be learned."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(classes, d))
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(size=(n, d))
    return x.astype("float32"), y.astype("int64")


def values(variable) -> np.ndarray:
    return keras.ops.convert_to_numpy(variable.value)
