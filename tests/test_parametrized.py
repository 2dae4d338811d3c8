"""Weights behind a parametrization: spectral_norm is pruned through its original; weight_norm is locked, said so."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations as P

import prunekit as pk


def spectral() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(P.spectral_norm(nn.Conv2d(3, 8, 3)), nn.ReLU(), nn.Flatten(),
                         P.spectral_norm(nn.Linear(8 * 6 * 6, 16)), nn.ReLU(), nn.Linear(16, 4))


def normed(norm=P.weight_norm) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(norm(nn.Conv2d(3, 8, 3)), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 4))


X = torch.randn(2, 3, 8, 8)


def test_spectral_norm_is_pruned_through_its_original():
    model = spectral()
    names = {t.qname for t in pk.prunable(model)}
    assert names == {"0.parametrizations.weight.original", "3.parametrizations.weight.original", "5.weight"}
    total = sum(t.param.numel() for t in pk.prunable(model))
    masks = pk.prune(model, 0.6)
    exact = round(0.6 * total) / total
    assert masks.sparsity == pytest.approx(exact, abs=1e-12)
    assert pk.sparsity(model) == pytest.approx(exact, abs=1e-12)
    for i in (0, 3):  # the weight the layer computes is zero exactly where the mask says
        mask = masks[f"{i}.parametrizations.weight.original"]
        assert torch.equal(model[i].weight != 0, mask)


def test_spectral_norm_masks_hold_through_training_and_round_trip(tmp_path):
    model = spectral()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    masks = pk.prune(model, 0.8)
    for _ in range(10):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), torch.tensor([0, 3])).backward()
        opt.step()
    for i in (0, 3):
        assert not bool(model[i].weight[masks[f"{i}.parametrizations.weight.original"].logical_not()].any())
    pk.save(model, tmp_path / "m.safetensors")
    fresh = spectral()
    pk.load(tmp_path / "m.safetensors", fresh)
    model.eval(), fresh.eval()
    assert torch.equal(model(X), fresh(X))
    assert set(pk.Masks.from_model(fresh)) == set(masks)


def test_weight_norm_layer_is_locked_and_said_so():
    model = normed()
    with pytest.warns(UserWarning, match=r"'0'.*kept dense because weight_norm"):
        masks = pk.prune(model, 0.5)
    assert not any(k.startswith("0.") for k in masks)
    assert masks.sparsity == pytest.approx(0.5, abs=1e-3)
    assert torch.isfinite(model(X)).all()
    # pk.sparsity counts the locked layer's weight, so it never reports the target as reached
    locked = model[0].weight.numel()
    pruned = sum(m.numel() for m in masks.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pk.sparsity(model) == pytest.approx(masks.sparsity * pruned / (pruned + locked), abs=1e-9)
        assert pk.sparsity(model) < 0.5


def test_weight_norm_does_not_refuse_structured_pruning():
    with pytest.warns(UserWarning, match="kept dense"):
        masks = pk.prune(normed(), 0.5, structure="neurons", example_inputs=X)
    assert set(masks) == {"2.weight", "2.bias"}
    with pytest.warns(UserWarning, match="kept dense"):
        masks = pk.prune(normed(), structure="2:4")
    assert "2.weight" in masks


@pytest.mark.parametrize("norm", [P.weight_norm, P.spectral_norm])
def test_channel_pruning_keeps_the_parametrized_layers_channels(norm):
    model = normed(norm)
    with pytest.warns(UserWarning, match=r"layer '0'.*computed.*channels are kept"):
        masks = pk.prune(model, 0.25, structure="channels", example_inputs=X)
    assert masks and not any(k.startswith("0.") for k in masks)
    small = pk.compact(model, X)
    model.eval(), small.eval()
    for x in (X, torch.randn(5, 3, 8, 8)):
        assert torch.allclose(small(x), model(x), atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
