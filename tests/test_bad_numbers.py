"""Class 7 of issue 17: numerical options out of range raise InvalidArgumentError naming the option."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import mlp

import prunekit as pk
from prunekit.data import ArrayDataset


@pytest.fixture(scope="module")
def report():
    return pk.theory.gap(mlp(), torch.randn(16, 20), sparsity=0.5)


@pytest.mark.parametrize("eps", [0, -1.0, math.nan, math.inf, "0.1"])
def test_gap_summary_eps(report, eps):
    with pytest.raises(pk.InvalidArgumentError, match="eps must be"):
        report.summary(eps=eps)


def test_gap_quantile_and_confidence(report):
    with pytest.raises(pk.InvalidArgumentError, match="q must be"):
        report.quantile(1.5)
    with pytest.raises(pk.InvalidArgumentError, match="confidence must be"):
        report.prob_within(0.1, confidence=1.0)
    assert 0 <= report.summary(eps=0.5)["p_within"] <= 1


@pytest.mark.parametrize("option, value", [("n_inputs", 0), ("batch_size", -3), ("confidence", 0.0),
                                           ("seed", 1.5), ("n_inputs", 2.5)])
def test_gap_estimator_options(option, value):
    with pytest.raises(pk.InvalidArgumentError, match=option):
        pk.theory.gap(mlp(), input_shape=(20,), sparsity=0.5, **{option: value})


@pytest.mark.parametrize("axis", [5, -3, 2])
def test_unit_pruning_axis(axis):
    with pytest.raises(pk.InvalidArgumentError, match=rf"axis={axis} does not exist in array 0 of shape \(3, 4\)"):
        pk.functional.unit_pruning(np.ones((3, 4)), 0.5, axis=axis)
    with pytest.raises(pk.InvalidArgumentError, match="array 1"):
        pk.functional.unit_pruning([np.ones((3, 4, 2)), np.ones((3, 4))], 0.5, axis=2)


@pytest.mark.parametrize("k", [math.nan, -0.1, 1.0, "0.5"])
def test_functional_fraction(k):
    with pytest.raises(pk.InvalidSparsityError, match="k is the fraction"):
        pk.functional.weight_pruning(np.ones((3, 4)), k)


@pytest.mark.parametrize("kwargs, name", [
    ({"num_classes": -1}, "num_classes"), ({"num_classes": 0}, "num_classes"), ({"num_classes": 2.5}, "num_classes"),
    ({"in_channels": 0}, "in_channels"), ({"input_size": (28, -1)}, "input_size"),
])
def test_models_create(kwargs, name):
    with pytest.raises(pk.InvalidArgumentError, match=f"{name} must be an integer >= 1"):
        pk.models.create("mlp", **kwargs)


def _tiny() -> ArrayDataset:
    return ArrayDataset(torch.randn(8, 20), torch.arange(8) % 10)


@pytest.mark.parametrize("kwargs, name", [
    ({"lr": -1}, "lr"), ({"lr": 0}, "lr"), ({"lr": math.inf}, "lr"), ({"lr": math.nan}, "lr"),
    ({"batch_size": 0}, "batch_size"), ({"momentum": 1.5}, "momentum"), ({"weight_decay": -1e-4}, "weight_decay"),
])
def test_train_options(kwargs, name):
    model = mlp()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(pk.InvalidArgumentError, match=f"{name} must be"):
        pk.train(model, _tiny(), epochs=1, progress=False, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
