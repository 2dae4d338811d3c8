"""Exact counts, ranking order, global vs layer semantics, ties, compression and monotonicity."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import prunekit as pk
from conftest import convnet, mlp


def zeros(t: torch.Tensor) -> int:
    return int((t == 0).sum())


shapes = st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(shapes=shapes, sparsity=st.floats(0, 0.999), seed=st.integers(0, 10))
def test_global_weights_exact_count(shapes, sparsity, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(*[nn.Linear(i, o) for o, i in shapes])
    n = sum(o * i for o, i in shapes)
    pk.prune(model, sparsity, allow_collapse=True)  # the count stays exact even when a layer empties
    assert sum(zeros(m.weight) for m in model) == round(sparsity * n)
    assert sum(zeros(m.weight_mask.logical_not()) for m in model) == n - round(sparsity * n)


@settings(max_examples=60, deadline=None)
@given(shapes=shapes, sparsity=st.floats(0, 0.999), seed=st.integers(0, 10))
def test_layer_scope_same_fraction_each_tensor(shapes, sparsity, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(*[nn.Linear(i, o) for o, i in shapes])
    pk.prune(model, sparsity, scope="layer", allow_collapse=True)  # a 1-weight layer at 0.75 empties: exact still
    for m in model:
        assert zeros(m.weight) == round(sparsity * m.weight.numel())


@settings(max_examples=40, deadline=None)
@given(shapes=shapes, sparsity=st.floats(0, 0.999), scope=st.sampled_from(["global", "layer"]))
def test_neurons_exact_count_with_bias(shapes, sparsity, scope):
    model = nn.Sequential(*[nn.Linear(i, o) for o, i in shapes])
    pk.prune(model, sparsity, structure="neurons", scope=scope, prune_outputs=True,  # count every layer
             allow_collapse=True)
    dead = [int((m.weight.abs().sum(1) == 0).sum()) for m in model]
    if scope == "global":
        assert sum(dead) == round(sparsity * sum(o for o, _ in shapes))
    else:
        assert dead == [round(sparsity * o) for o, _ in shapes]
    for m in model:  # a pruned neuron loses its bias entry too
        rows_dead = m.weight.abs().sum(1) == 0
        assert torch.all(m.bias[rows_dead] == 0)


def test_ordering_every_kept_score_at_least_every_pruned():
    model = convnet()
    before = {n: p.detach().abs().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    masks = pk.prune(model, 0.7)
    kept = torch.cat([before[n][m].flatten() for n, m in masks.items()])
    pruned = torch.cat([before[n][~m].flatten() for n, m in masks.items()])
    assert kept.min() >= pruned.max()


def test_layer_scope_ordering_within_each_tensor():
    model = mlp()
    before = {n: p.detach().abs().clone() for n, p in model.named_parameters()}
    masks = pk.prune(model, 0.5, method="layer-magnitude")
    for name, m in masks.items():
        assert before[name][m].min() >= before[name][~m].max()


def test_neuron_scores_are_l2_norms():
    model = mlp()
    norms = model[0].weight.detach().norm(dim=1)
    pk.prune(model, 0.25, structure="neurons", scope="layer")
    dead = model[0].weight.abs().sum(1) == 0
    assert norms[dead].max() <= norms[~dead].min()


def test_ties_broken_deterministically_by_order():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        for m in model:
            m.weight.fill_(1.0)
    pk.prune(model, 0.5)  # 18 weights, 9 pruned: all 12 of layer 0 tie, the first 9 go
    assert model[0].weight.flatten().tolist() == [0.0] * 9 + [1.0] * 3
    assert zeros(model[1].weight) == 0


def test_same_call_same_masks():
    a, b = mlp(3), mlp(3)
    ma = pk.prune(a, 0.8, score="random", seed=7)
    mb = pk.prune(b, 0.8, score="random", seed=7)
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    c = mlp(3)
    mc = pk.prune(c, 0.8, score="random", seed=8)
    assert any(not torch.equal(ma[k], mc[k]) for k in ma)


def test_large_tensor_selection_is_exact():
    """Above the sampling threshold the bracketed k-th value search must still be exact."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(700, 600, bias=False), nn.Linear(600, 500, bias=False))
    with torch.no_grad():  # many ties on a coarse grid
        for m in model:
            m.weight.copy_((torch.randn_like(m.weight) * 4).round())
    n = 700 * 600 + 600 * 500
    for s in (0.1, 0.37, 0.9):
        pk.prune(model, s)
        assert sum(zeros(m.weight_mask.logical_not()) for m in model) == n - round(s * n)


@pytest.mark.parametrize("c", [2, 4, 8, 16, 32])
def test_compression_is_whole_model_ratio(c):
    model = convnet()
    pk.prune(model, compression=c, method="global-magnitude", allow_collapse=True)  # 16x, 32x empty a layer
    s = pk.summary(model, torch.randn(1, 3, 16, 16))
    assert s.compression == pytest.approx(c, rel=0.01)


def test_monotone_pruning_keeps_earlier_zeros():
    model = mlp()
    first = {k: v.clone() for k, v in pk.prune(model, 0.5).items()}
    torch.manual_seed(1)
    with torch.no_grad():  # shuffle the surviving weights so a fresh ranking would differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (p != 0))
    second = pk.prune(model, 0.8, score="random")
    for k in first:
        assert not (second[k] & ~first[k]).any()
    assert pk.sparsity(model) == pytest.approx(0.8, abs=1e-3)


def test_lower_target_than_already_pruned_is_refused():
    model = mlp()
    pk.prune(model, 0.8)
    with pytest.raises(pk.InvalidSparsityError, match="unprune"):
        pk.prune(model, 0.5)


def test_per_layer_ratios():
    model = mlp()
    pk.prune(model, scope={"0": 0.5, "2.weight": 0.25})
    assert zeros(model[0].weight) == round(0.5 * model[0].weight.numel())
    assert zeros(model[2].weight) == round(0.25 * model[2].weight.numel())
    assert zeros(model[4].weight) == 0


def test_exclude_by_name_and_type():
    model = convnet()
    pk.prune(model, 0.9, exclude=["6"])
    assert zeros(model[6].weight) == 0
    model = convnet()
    pk.prune(model, 0.9, exclude=[nn.Conv2d])
    assert zeros(model[0].weight) == 0 and zeros(model[3].weight) == 0
    assert zeros(model[6].weight) > 0


def test_conv_transpose_neurons_use_output_axis():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose2d(4, 6, 3))
    pk.prune(model, 0.5, structure="neurons", prune_outputs=["0"])  # the only layer is the output layer
    dead = model[0].weight.abs().sum((0, 2, 3)) == 0
    assert int(dead.sum()) == 3
    assert torch.all(model[0].bias[dead] == 0)


def test_masks_object_and_buffer_names():
    model = mlp()
    masks = pk.prune(model, 0.5)
    assert set(masks) == {"0.weight", "2.weight", "4.weight"}
    assert masks.sparsity == pytest.approx(0.5, abs=1e-3)
    assert "0.weight_mask" in model.state_dict()
    assert not any("orig" in k for k in model.state_dict())
    assert math.isclose(pk.sparsity(model), 0.5, abs_tol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_half_precision_layers_above_half_range_prune_exactly(dtype, scope, monkeypatch):
    """A half-precision layer with more weights than float16 can count (65,504) prunes to the exact count
    by the one-pass selection: counting comparison results in the scores' own dtype overflowed to inf in
    float16 (OverflowError) and rounded in bfloat16 (a 511 x 511 layer: a size mismatch error)."""
    from prunekit import selection

    def no_fallback(*args, **kwargs):
        raise AssertionError("the one-pass selection missed and fell back to the exact two-pass path")

    monkeypatch.setattr(selection, "_kth_smallest", no_fallback)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(511, 511), nn.ReLU(), nn.Linear(511, 10)).to(dtype)
    before = {n: p.detach().abs().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    masks = pk.prune(model, 0.9, scope=scope)
    assert model[0].weight.dtype == dtype
    if scope == "layer":
        assert [zeros(m.weight) for m in (model[0], model[2])] == [round(0.9 * 511 * 511), round(0.9 * 5110)]
    else:
        assert sum(zeros(m.weight) for m in (model[0], model[2])) == round(0.9 * (511 * 511 + 5110))
    for n, m in masks.items() if scope == "layer" else [(None, None)]:
        kept, pruned = (before[n][m], before[n][~m]) if n else (
            torch.cat([before[k][v] for k, v in masks.items()]), torch.cat([before[k][~v] for k, v in masks.items()]))
        assert kept.min() >= pruned.max()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("width", [20, 1100])  # 1100 x 1000 weights: above the size selection samples from
@pytest.mark.parametrize("options", [{"scope": "layer"}, {"scope": "global"}, {"scope": "row"}, {"structure": "2:4"}],
                         ids=["layer", "global", "row", "2:4"])
def test_nan_scores_raise_in_every_scope_and_prune_nothing(width, options):
    """A NaN in the data makes the loss, so every gradient score, NaN. Layer and global scope looped forever
    on a layer big enough to sample; row and N:M scope pruned arbitrary weights without a word."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, 1000), nn.ReLU(), nn.Linear(1000, 4))
    x = torch.randn(16, width)
    x[5, 2] = float("nan")
    sparsity = None if "structure" in options else 0.5
    with pytest.raises(pk.InvalidSparsityError, match="scores contain NaN"):
        pk.prune(model, sparsity, score="gradient", data=[(x, torch.randint(0, 4, (16,)))], **options)
    assert pk.sparsity(model) == 0
