"""Every user mistake raises a PruneError subclass whose message says what to do."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import prunekit as pk
from conftest import mlp


@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5, math.nan])
def test_sparsity_out_of_range(s):
    with pytest.raises(pk.InvalidSparsityError, match=r"\[0, 1\)"):
        pk.prune(mlp(), s)


@pytest.mark.parametrize("c", [0.5, 0, -2])
def test_compression_below_one(c):
    with pytest.raises(pk.InvalidSparsityError, match=">= 1"):
        pk.prune(mlp(), compression=c)


def test_unreachable_compression_names_the_limit():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Embedding(1000, 10))
    with pytest.raises(pk.InvalidSparsityError, match="highest possible"):
        pk.prune(model, compression=10)


def test_both_or_neither_target():
    with pytest.raises(pk.InvalidSparsityError):
        pk.prune(mlp(), 0.5, compression=2)
    with pytest.raises(pk.InvalidSparsityError):
        pk.prune(mlp())


@pytest.mark.parametrize(
    "kwargs, listed",
    [
        ({"structure": "tiles"}, "neurons"),
        ({"score": "taylor9"}, "magnitude"),
        ({"scope": "everywhere"}, "layer"),
        ({"method": "best"}, "global-magnitude"),
    ],
)
def test_unknown_names_list_valid_ones(kwargs, listed):
    with pytest.raises(pk.PruneError, match=listed):
        pk.prune(mlp(), 0.5, **kwargs)


def test_method_conflicts_with_score():
    with pytest.raises(pk.PruneError, match="either method"):
        pk.prune(mlp(), 0.5, method="random", score="magnitude")


def test_gradient_without_data():
    with pytest.raises(pk.MissingDataError, match="data="):
        pk.prune(mlp(), 0.5, score="gradient")
    with pytest.raises(pk.MissingDataError):
        pk.prune(mlp(), 0.5, score="gradient", data=[])


def test_no_prunable_layers():
    with pytest.raises(pk.NoPrunableLayersError, match="no prunable layer"):
        pk.prune(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), 0.5)


def test_exclude_everything():
    with pytest.raises(pk.NoPrunableLayersError, match="exclude"):
        pk.prune(mlp(), 0.5, exclude=[nn.Linear])


def test_nonfinite_weights_named():
    model = mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.raises(pk.NonFiniteWeightsError, match=r"2\.weight"):
        pk.prune(model, 0.5)
    model[2].weight.data[0, 0] = float("inf")
    with pytest.raises(pk.NonFiniteWeightsError):
        pk.prune(model, 0.5)
    pk.prune(model, 0.5, check_finite=False)  # explicit opt-out works


def test_errors_are_value_errors_with_one_base():
    assert issubclass(pk.InvalidSparsityError, pk.PruneError)
    assert issubclass(pk.PruneError, ValueError)
