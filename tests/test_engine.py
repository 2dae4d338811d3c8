"""One engine for every structure: output safety, name matching, new scores and structures from outside."""
from __future__ import annotations

import torch
from torch import nn

import prunekit as pk


def lenet300() -> nn.Module:
    torch.manual_seed(0)
    return pk.models.create("lenet300")


def output_layer(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def test_neuron_pruning_keeps_every_output_class_by_default():
    model = lenet300()
    pk.prune(model, sparsity=0.5, structure="neurons")
    head = output_layer(model)
    assert head.out_features == 10
    assert bool((head.weight.abs().sum(1) > 0).all()), "an output class was pruned"
