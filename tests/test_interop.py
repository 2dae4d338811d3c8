"""torch.nn.utils.prune ⇄ prunekit: same outputs, same masks, masks still enforced."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import prunekit as pk


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def test_from_torch_prune_keeps_outputs_and_masks():
    model = mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.l1_unstructured(model[0], "weight", amount=0.5)  # a PruningContainer: 75 % in all
    prune.random_unstructured(model[2], "bias", amount=0.5)
    torch_masks = {"0.weight": model[0].weight_mask.bool(), "2.bias": model[2].bias_mask.bool()}
    x = torch.randn(5, 16)
    want = model(x)
    orig = model[0].weight_orig
    masks = pk.from_torch_prune(model)
    assert set(masks) == set(torch_masks)
    for key, mask in torch_masks.items():
        assert torch.equal(masks[key], mask)
    assert torch.equal(model(x), want)
    assert model[0].weight is orig  # same Parameter: optimizers built before still point at it
    assert {n for n, _ in model.named_parameters()} == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert not model[0]._forward_pre_hooks
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    assert not model[0].weight[~torch_masks["0.weight"]].any()


def test_to_torch_prune_and_back():
    model = mlp()
    pk.prune(model, sparsity=0.8, scope="layer")  # global 80 % would empty 2.weight (layer collapse)
    masks = dict(pk.Masks.from_model(model))
    x = torch.randn(5, 16)
    want = model(x)
    pk.to_torch_prune(model)
    assert torch.equal(model(x), want)
    assert hasattr(model[0], "weight_orig") and model[0].weight_mask.dtype == torch.float32
    assert prune.is_pruned(model)
    for key, mask in masks.items():
        module = model.get_submodule(key.rpartition(".")[0])
        assert torch.equal(module.weight_mask.bool(), mask)
    back = pk.from_torch_prune(model)
    assert {k: v for k, v in back.items()}.keys() == masks.keys()
    assert all(torch.equal(back[k], masks[k]) for k in masks)
    assert torch.equal(model(x), want)


def test_torch_prune_remove_works_after_export():
    model = mlp()
    pk.prune(model, sparsity=0.5)
    pk.to_torch_prune(model)
    prune.remove(model[0], "weight")
    prune.remove(model[2], "weight")
    assert not prune.is_pruned(model)
    assert pk.sparsity(model) == 0.5


def test_nothing_to_convert():
    with pytest.raises(pk.ExportError, match="torch.nn.utils.prune"):
        pk.from_torch_prune(mlp())
    with pytest.raises(pk.ExportError, match="pk.prune"):
        pk.to_torch_prune(mlp())
