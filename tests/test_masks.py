"""Masks hold through plain training loops, survive state_dict/save/load, and come off with unprune."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import prunekit as pk
from conftest import convnet, mlp

OPTIMIZERS = {
    "sgd-momentum-nesterov-wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adam-wd": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.9),
    "adam-foreach-off": lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False),
}


def plain_loop(model, opt, steps=100, shape=(16, 3, 16, 16)):
    torch.manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(shape), torch.randint(0, 10, (shape[0],))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_masks_survive_100_steps(name):
    model = convnet()
    # The optimizer exists before pruning and already has state (momentum / Adam moments) for weights
    # that are about to be pruned: the hardest case for a mask.
    opt = OPTIMIZERS[name](model.parameters())
    plain_loop(model, opt, steps=3)
    masks = pk.prune(model, 0.8)
    plain_loop(model, opt)
    for qname, mask in masks.items():
        param = model.get_parameter(qname)
        assert torch.all(param[~mask] == 0), qname
        assert param[mask].abs().sum() > 0
    assert pk.sparsity(model) >= 0.8


def test_grad_of_pruned_weights_is_zero():
    model = mlp()
    masks = pk.prune(model, 0.5)
    model(torch.randn(4, 20)).sum().backward()
    assert torch.all(model[0].weight.grad[~masks["0.weight"]] == 0)


def test_no_forward_hooks_no_orig_copy_same_param_count():
    model = mlp()
    n = sum(p.numel() for p in model.parameters())
    pk.prune(model, 0.9, allow_collapse=True)  # global 90 % empties a layer of this MLP; hooks are the point
    assert sum(p.numel() for p in model.parameters()) == n
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert not any("orig" in name for name, _ in model.named_parameters())


def test_state_dict_carries_masks_and_load_reapplies():
    model = mlp()
    pk.prune(model, 0.7)
    state = model.state_dict()
    dense = mlp(5)
    state_dense = {k: v for k, v in dense.state_dict().items()}
    model.load_state_dict({**state, **state_dense})  # dense weights loaded over a pruned model
    assert pk.sparsity(model) == pytest.approx(0.7, abs=1e-3)


def test_masks_save_load_apply_to_fresh_copy(tmp_path):
    model = convnet(0)
    masks = pk.prune(model, 0.6, structure="neurons", scope="layer")
    masks.save(tmp_path / "masks.safetensors")
    raw = (tmp_path / "masks.safetensors").read_bytes()
    assert b"pickle" not in raw and raw[8:9] == b"{"  # safetensors header, no pickle
    loaded = pk.Masks.load(tmp_path / "masks.safetensors")
    fresh = convnet(1)
    loaded.apply(fresh)
    for k in masks:
        assert torch.equal(masks[k], loaded[k])
        assert torch.all(fresh.get_parameter(k)[~masks[k]] == 0)
    plain_loop(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9), steps=5)
    assert all(torch.all(fresh.get_parameter(k)[~masks[k]] == 0) for k in masks)


def test_apply_to_wrong_architecture_is_refused():
    masks = pk.prune(mlp(), 0.5)
    with pytest.raises(pk.MaskMismatchError):
        masks.apply(convnet())


def test_deepcopy_rehooked_by_apply():
    model = mlp()
    pk.prune(model, 0.5)
    clone = copy.deepcopy(model)
    pk.Masks.from_model(clone).apply(clone)
    opt = torch.optim.Adam(clone.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        clone(torch.randn(4, 20)).sum().backward()
        opt.step()
    assert pk.sparsity(clone) == pytest.approx(0.5, abs=1e-3)


def test_unprune_removes_masks_and_hooks():
    model = mlp()
    pk.prune(model, 0.5)
    pk.unprune(model)
    assert not any(k.endswith("_mask") for k in model.state_dict())
    assert len(pk.Masks.from_model(model)) == 0
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    model(torch.randn(4, 20)).sum().backward()
    opt.step()
    assert pk.sparsity(model) < 0.3  # pruned weights regrow once unpruned (was 0.5)


def test_to_dtype_keeps_enforcement():
    model = mlp()
    pk.prune(model, 0.5)
    model.double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 20, dtype=torch.double)).sum().backward()
        opt.step()
    assert pk.sparsity(model) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("n", [1000, 3 * (1 << 18) + 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_pruned_entries_become_positive_zero_whatever_they_held(n, dtype):
    """Zeroing ANDs the float bits: negative weights, NaN and infinity all become +0.0, kept ones unchanged."""
    from prunekit.masks import attach

    layer = nn.Linear(n, 1, bias=False).to(dtype)
    with torch.no_grad():
        layer.weight.normal_()
        layer.weight[0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -1.5])
    before = layer.weight.detach().clone()
    keep = torch.rand(1, n) > 0.5
    keep[0, :4] = False
    attach(layer, "weight", keep)
    w = layer.weight.detach()
    assert torch.equal(w[keep], before[keep])
    assert torch.all(w[~keep] == 0) and not torch.signbit(w[~keep]).any()


@pytest.mark.parametrize("optimizer", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
                                       lambda p: torch.optim.AdamW(p, lr=0.1)])
def test_a_deep_copy_keeps_its_masks_held_without_reapplying(optimizer):
    model = mlp()
    pk.prune(model, 0.5)
    clone = copy.deepcopy(model)
    masks = pk.Masks.from_model(clone)
    opt = optimizer(clone.parameters())
    for _ in range(5):
        opt.zero_grad()
        clone(torch.randn(4, 20)).sum().backward()
        opt.step()
    assert all(torch.all(clone.get_parameter(k)[~m] == 0) for k, m in masks.items())
    assert pk.sparsity(clone) == pytest.approx(0.5, abs=1e-3)
    copy.deepcopy(clone).load_state_dict(model.state_dict())  # a copy's load hook works too
    pk.unprune(clone)  # and unprune removes every hook of the copy: pruned weights regrow
    opt = torch.optim.SGD(clone.parameters(), lr=0.1)
    opt.zero_grad()
    clone(torch.randn(4, 20)).sum().backward()
    opt.step()
    assert pk.sparsity(clone) < 0.3
