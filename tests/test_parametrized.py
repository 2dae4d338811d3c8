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


class Doubled(nn.Module):
    """A parametrization prunekit does not know: the layer is kept dense, and said so."""

    def forward(self, w):
        return w.flip(0) * 2


def test_weight_norm_is_pruned_through_its_direction():
    model = normed()
    names = {t.qname for t in pk.prunable(model)}
    assert "0.parametrizations.weight.original1" in names and "0.parametrizations.weight.original0" not in names
    total = sum(t.param.numel() for t in pk.prunable(model))
    masks = pk.prune(model, 0.6)
    assert masks.sparsity == pytest.approx(round(0.6 * total) / total, abs=1e-12)
    assert pk.sparsity(model) == pytest.approx(round(0.6 * total) / total, abs=1e-12)
    assert torch.equal(model[0].weight != 0, masks["0.parametrizations.weight.original1"])


def test_weight_norm_row_pruned_whole_computes_zero_not_nan(tmp_path):
    model = normed()
    before = model[0].weight.detach().clone()
    mask = torch.ones_like(before, dtype=torch.bool)
    mask[2] = False  # a whole filter: its norm is 0, and weight_norm would divide by it
    mask[5, 0] = False
    pk.Masks({"0.parametrizations.weight.original1": mask}).apply(model)
    after = model[0].weight.detach()
    assert torch.equal(after[2], torch.zeros_like(after[2])) and after[5, 0].eq(0).all()
    untouched = [i for i in range(8) if i not in (2, 5)]
    assert torch.equal(after[untouched], before[untouched])  # bit for bit what weight_norm computed before
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), torch.tensor([0, 3])).backward()
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.equal(model[0].weight != 0, mask)
    pk.save(model, tmp_path / "m.safetensors")
    fresh = pk.load(tmp_path / "m.safetensors", normed())
    model.eval(), fresh.eval()
    assert torch.equal(fresh(X), model(X))


def test_high_sparsity_weight_norm_stays_finite():
    model = nn.Sequential(P.weight_norm(nn.Linear(16, 8)), nn.ReLU(), nn.Linear(8, 4))
    pk.prune(model, 0.95, allow_collapse=True)  # extreme on purpose: whole rows (and layers) go
    assert (model[0].weight == 0).all(1).any()  # some neuron lost every input
    assert torch.isfinite(model(torch.randn(3, 16))).all()


def test_unknown_parametrization_is_locked_and_said_so():
    model = normed()
    nn.utils.parametrize.register_parametrization(model[2], "weight", Doubled())
    with pytest.warns(UserWarning, match=r"layer '2'.*kept dense because its parametrization \(Doubled\)"):
        masks = pk.prune(model, 0.5)
    assert not any(k.startswith("2.") for k in masks)
    assert masks.sparsity == pytest.approx(0.5, abs=1e-3)
    # pk.sparsity counts the locked layer's weight, so it never reports the target as reached
    locked = model[2].weight.numel()
    pruned = sum(m.numel() for m in masks.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pk.sparsity(model) == pytest.approx(masks.sparsity * pruned / (pruned + locked), abs=1e-9)
        assert pk.sparsity(model) < 0.5


def test_parametrized_layers_do_not_refuse_structured_pruning():
    with pytest.warns(UserWarning, match="kept dense because whole units"):
        masks = pk.prune(normed(), 0.5, structure="neurons", example_inputs=X)
    assert set(masks) == {"2.weight", "2.bias"}
    with pytest.raises(pk.UnsupportedLayerError, match=r"^0.parametrizations.weight.original1: .* parametrized weight"):
        pk.prune(normed(), structure="2:4")  # 3 input channels: named, not 'ParametrizationList'
    model = nn.Sequential(nn.Linear(8, 8), P.weight_norm(nn.Linear(8, 8)), P.spectral_norm(nn.Linear(8, 4)))
    masks = pk.prune(model, structure="2:4")
    assert set(masks) == {"0.weight", "1.parametrizations.weight.original1", "2.parametrizations.weight.original"}
    for i in (1, 2):
        assert bool(((model[i].weight != 0).reshape(-1, 4).sum(1) == 2).all())


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
