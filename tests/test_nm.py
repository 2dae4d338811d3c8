"""N:M structure: exactly N kept in every block of M consecutive input weights, with any score."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import prunekit as pk
from prunekit.structures import NM, parse


def block_counts(weight: torch.Tensor, m: int, axis: int = 1) -> torch.Tensor:
    return (weight.movedim(axis, -1).reshape(-1, m) != 0).sum(1)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))


@pytest.mark.parametrize("spec,n,m", [("2:4", 2, 4), ("1:4", 1, 4), ("4:8", 4, 8), ("3:8", 3, 8), ("1:2", 1, 2)])
def test_exact_counts_per_block(spec, n, m):
    model = mlp()
    masks = pk.prune(model, structure=spec)
    assert masks.sparsity == pytest.approx(1 - n / m)
    for layer in (model[0], model[2]):
        assert (block_counts(layer.weight, m) == n).all()
        assert (block_counts(layer.weight_mask, m) == n).all()


def test_keeps_the_highest_magnitudes_of_each_block():
    model = mlp()
    before = model[0].weight.detach().clone()
    pk.prune(model, structure="2:4")
    blocks = before.reshape(-1, 4).abs()
    kept = model[0].weight_mask.reshape(-1, 4)
    top = blocks.topk(2, dim=1).indices
    assert torch.equal(kept, torch.zeros_like(kept).scatter_(1, top, True))


@pytest.mark.parametrize("score", ["magnitude", "random", "gradient"])
def test_any_score(score):
    model = mlp()
    data = (torch.randn(8, 32), torch.randint(0, 8, (8,)))
    pk.prune(model, structure="2:4", score=score, data=data if score == "gradient" else None)
    assert (block_counts(model[0].weight_mask, 4) == 2).all()


def test_convolutions_use_input_channel_blocks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 4, 3), nn.ConvTranspose2d(4, 8, 3))
    pk.prune(model, structure="2:4")
    assert (block_counts(model[0].weight_mask, 4, axis=1) == 2).all()
    assert (block_counts(model[1].weight_mask, 4, axis=0) == 2).all()


def test_sparsity_must_match_or_be_omitted():
    pk.prune(mlp(), sparsity=0.5, structure="2:4")
    with pytest.raises(pk.InvalidSparsityError, match="omit sparsity or pass 0.5"):
        pk.prune(mlp(), sparsity=0.7, structure="2:4")
    with pytest.raises(pk.InvalidSparsityError, match="omit compression"):
        pk.prune(mlp(), compression=2, structure="2:4")
    with pytest.raises(pk.InvalidSparsityError, match="0 < N < M"):
        pk.prune(mlp(), structure="4:4")


def test_input_size_must_be_a_multiple_of_m():
    model = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 4))
    with pytest.raises(pk.UnsupportedLayerError, match="multiple of 4"):
        pk.prune(model, structure="2:4")
    pk.prune(model, structure="2:4", exclude=["0"])
    assert (block_counts(model[1].weight, 4) == 2).all()


def test_masks_hold_through_training():
    model = mlp()
    pk.prune(model, structure="2:4")
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 32)).square().sum().backward()
        opt.step()
    assert (block_counts(model[0].weight, 4) <= 2).all()
    assert torch.equal(model[0].weight != 0, model[0].weight_mask)


def test_monotone_refinement_and_refusal():
    model = mlp()
    pk.prune(model, structure="2:4")
    first = model[0].weight_mask.clone()
    pk.prune(model, structure="1:4")
    assert (block_counts(model[0].weight_mask, 4) == 1).all()
    assert not (model[0].weight_mask & ~first).any()
    with pytest.raises(pk.InvalidSparsityError, match="unprune"):
        pk.prune(model, structure="2:4")


def test_registry_and_parsing():
    assert pk.structures.registry.get("2:4").n == 2
    assert parse(" 3 : 8 ").m == 8 and parse("weights") is None
    custom = NM(3, 16)
    assert parse(custom) is custom


@settings(max_examples=25, deadline=None)
@given(
    m=st.sampled_from([2, 4, 8]),
    data=st.data(),
    rows=st.integers(1, 6),
    blocks=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_counts_for_any_shape(m, data, rows, blocks, seed):
    n = data.draw(st.integers(1, m - 1))
    torch.manual_seed(seed)
    layer = nn.Linear(m * blocks, rows)
    with torch.no_grad():  # ties everywhere: selection must still be exact and deterministic
        layer.weight.copy_(torch.randint(-1, 2, layer.weight.shape).float())
    pk.prune(layer, structure=f"{n}:{m}")
    assert (block_counts(layer.weight_mask, m) == n).all()
