"""On tie-free weights our masks equal torch.nn.utils.prune's (converted to absolute sparsity)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.utils.prune as tprune

import prunekit as pk
from conftest import convnet


@pytest.mark.parametrize("amount", [0.1, 0.5, 0.9, 0.97])
def test_global_unstructured_same_masks(amount):
    ours, theirs = convnet(0), convnet(0)
    masks = pk.prune(ours, amount, allow_collapse=True)  # torch empties layers silently at 0.9 and 0.97
    params = [(m, "weight") for m in theirs.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    for (module, _), name in zip(params, masks):
        assert torch.equal(module.weight_mask.bool(), masks[name])


@pytest.mark.parametrize("amount", [0.2, 0.75])
def test_l1_unstructured_equals_layer_scope(amount):
    ours, theirs = convnet(0), convnet(0)
    masks = pk.prune(ours, amount, scope="layer")
    for name, module in theirs.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            tprune.l1_unstructured(module, "weight", amount=amount)
            assert torch.equal(module.weight_mask.bool(), masks[f"{name}.weight"])


def test_ln_structured_equals_neurons_layer_scope():
    ours, theirs = convnet(0), convnet(0)
    masks = pk.prune(ours, 0.5, structure="neurons", scope="layer")
    tprune.ln_structured(theirs[0], "weight", amount=0.5, n=2, dim=0)
    assert torch.equal(theirs[0].weight_mask.bool(), masks["0.weight"])
