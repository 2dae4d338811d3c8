"""Array-level pruning on NumPy arrays, torch tensors and lists (global scope), for any framework."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import prunekit as pk
from prunekit.functional import unit_pruning, weight_pruning


@settings(max_examples=50, deadline=None)
@given(
    w=arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.floats(-10, 10, width=32)),
    k=st.floats(0, 0.99),
)
def test_weight_pruning_exact_and_ordered(w, k):
    pruned, mask = weight_pruning(w, k)
    assert isinstance(pruned, np.ndarray) and mask.dtype == bool
    assert int((~mask).sum()) == round(k * w.size)
    assert np.all(pruned[~mask] == 0) and np.array_equal(pruned[mask], w[mask])
    if mask.any() and (~mask).any():
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


def test_unit_pruning_keras_and_torch_axes():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(6, 8)).astype(np.float32)  # Keras Dense: (in, out), units on the last axis
    pruned, mask = unit_pruning(kernel, 0.5)
    norms = np.linalg.norm(kernel, axis=0)
    dead = ~mask.any(0)
    assert dead.sum() == 4 and norms[dead].max() <= norms[~dead].min()
    assert np.all(pruned[:, dead] == 0)
    weight = torch.from_numpy(kernel.T.copy())  # torch Linear: (out, in), units on axis 0
    tpruned, tmask = unit_pruning(weight, 0.5, axis=0)
    assert isinstance(tpruned, torch.Tensor)
    assert np.array_equal(tmask.numpy(), mask.T)


def test_list_form_is_one_global_ranking():
    rng = np.random.default_rng(1)
    small, big = rng.normal(size=(4, 4)) * 0.01, rng.normal(size=(4, 4)) * 10
    pruned, masks = weight_pruning([small, big], 0.5)
    assert isinstance(pruned, list) and len(masks) == 2
    assert not masks[0].any() and masks[1].all()  # the small tensor goes first


def test_torch_tensor_in_torch_out():
    w = torch.arange(1, 11, dtype=torch.float32)
    pruned, mask = weight_pruning(w, 0.3)
    assert pruned.tolist() == [0, 0, 0, 4, 5, 6, 7, 8, 9, 10]
    assert mask.dtype == torch.bool


@pytest.mark.parametrize("k", [-0.1, 1.0, 2])
def test_bad_fraction(k):
    with pytest.raises(pk.InvalidSparsityError):
        weight_pruning(np.ones(4), k)
