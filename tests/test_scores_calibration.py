"""Calibration plumbing, the Wanda score and the per-row scope."""
from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import prunekit as pk
from prunekit import calibration


def linear(seed: int = 0, i: int = 16, o: int = 8) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(i, o)





@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), sparsity=st.sampled_from([0.25, 0.5, 0.75]),
       scope=st.sampled_from(["row", "layer", "global"]))
def test_wanda_equals_magnitude_when_every_input_norm_is_one(seed, sparsity, scope):
    a, b = linear(seed), linear(seed)
    x = torch.eye(16)[torch.randperm(16, generator=torch.Generator().manual_seed(seed))]  # every column norm 1
    got = pk.prune(a, sparsity, score="wanda", scope=scope, data=x)
    want = pk.prune(b, sparsity, score="magnitude", scope=scope)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_wanda_equals_magnitude_for_2_4_with_unit_norms():
    a, b = linear(3), linear(3)
    got = pk.prune(a, score="wanda", structure="2:4", data=torch.eye(16))
    want = pk.prune(b, score="magnitude", structure="2:4")
    assert torch.equal(got["weight"], want["weight"])


def test_wanda_keeps_weights_of_loud_inputs():
    model = linear(1)
    x = torch.randn(64, 16)
    x[:, 3] *= 100  # one input with a much larger norm: its weights dominate |W|·‖X‖
    masks = pk.prune(model, 0.5, score="wanda", scope="row", data=x)
    assert bool(masks["weight"][:, 3].all())
    norms = x.norm(dim=0)
    s = model.weight.detach().abs() * norms  # pruned weights are now 0; compare kept ones against the originals
    assert s[masks["weight"]].min() > 0


def test_wanda_ranks_within_rows_by_weight_times_norm():
    model = linear(2)
    w = model.weight.detach().clone()
    x = torch.randn(40, 16) * torch.linspace(0.1, 3, 16)
    masks = pk.prune(model, 0.5, score="wanda", scope="row", data=x)["weight"]
    s = w.abs() * x.norm(dim=0)
    for r in range(w.shape[0]):
        assert s[r][masks[r]].min() >= s[r][~masks[r]].max()
        assert int((~masks[r]).sum()) == 8


@pytest.mark.parametrize("structure,n,m", [("2:4", 2, 4), ("1:4", 1, 4), ("4:8", 4, 8)])
def test_wanda_nm_is_exact_per_block(structure, n, m):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))
    pk.prune(model, score="wanda", structure=structure, data=torch.randn(50, 32))
    for layer in (model[0], model[2]):
        kept = (layer.weight != 0).view(-1, m).sum(1)
        assert bool((kept == n).all())


def test_row_scope_exact_per_row_and_monotone():
    model = linear(4, i=10, o=6)
    pk.prune(model, 0.3, scope="row")
    first = model.weight != 0
    assert ((~first).sum(1) == 3).all()
    pk.prune(model, 0.6, scope="row")
    second = model.weight != 0
    assert ((~second).sum(1) == 6).all()
    assert not bool((second & ~first).any())  # nothing grows back
    with pytest.raises(pk.PruneError, match="already has rows"):
        pk.prune(model, 0.2, scope="row")


def test_row_scope_needs_single_weights():
    with pytest.raises(pk.PruneError, match="row"):
        pk.prune(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), 0.5, scope="row", structure="neurons")


def test_labels_are_ignored_and_batches_stream():
    x = torch.randn(60, 16)
    a, b, c = linear(5), linear(5), linear(5)
    one = pk.prune(a, 0.5, score="wanda", scope="row", data=x)
    pairs = pk.prune(b, 0.5, score="wanda", scope="row", data=[(x[:30], torch.zeros(30)), (x[30:], torch.ones(30))])
    gen = pk.prune(c, 0.5, score="wanda", scope="row", data=(t for t in x.split(7)))
    assert torch.equal(one["weight"], pairs["weight"]) and torch.equal(one["weight"], gen["weight"])


def test_streamed_statistics_equal_whole_batch_ones():
    x = torch.randn(100, 12)
    norms, gram = calibration.ColumnNorms(), calibration.Gram()
    for part in x.split(17):
        norms.add(part)
        gram.add(part)
    assert torch.allclose(norms.result(), x.norm(dim=0))
    assert torch.allclose(gram.result(), 2 * x.t() @ x / 100, atol=1e-5)
    assert gram.h.shape == (12, 12) and gram.n == 100  # a fixed-size state: no activation kept


@pytest.mark.parametrize("conv", [nn.Conv2d(3, 5, 3, padding=1, stride=2, dilation=1),
                                  nn.Conv2d(2, 4, (2, 3), padding=(1, 0), dilation=(2, 1)),
                                  nn.Conv1d(3, 4, 3, padding=2, stride=2)])
def test_conv_rows_follow_the_weight_column_order(conv):
    x = torch.randn(2, conv.in_channels, *([9, 8] if isinstance(conv, nn.Conv2d) else [11]))
    r = calibration.rows(conv, x, "c")
    y = conv(x)
    flat = y.movedim(1, -1).reshape(-1, conv.out_channels)
    assert torch.allclose(r @ conv.weight.reshape(conv.out_channels, -1).t() + conv.bias, flat, atol=1e-5)


def test_wanda_on_a_cnn_prunes_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 10)).train()
    before = model[1].running_mean.clone()
    pk.prune(model, 0.5, score="wanda", scope="layer", data=torch.randn(4, 3, 6, 6))
    assert pk.sparsity(model) == 0.5
    assert torch.equal(model[1].running_mean, before) and model.training  # statistics and mode left as found


def test_data_that_does_not_fit_names_the_layer():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(pk.PruneError, match="'0'"):
        pk.prune(model, 0.5, score="wanda", data=torch.randn(5, 15))


@pytest.mark.parametrize("score,options", [("wanda", {"scope": "row"}), ("wanda", {"structure": "2:4"}),
                                           ("sparsegpt", {"scope": "layer"})])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_calibration_data_names_the_layer_and_prunes_nothing(score, options, bad):
    """A NaN or inf in the calibration data made Wanda's norms NaN and its masks arbitrary, silently."""
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    x = torch.randn(32, 16)
    x[5, 2] = bad
    with pytest.raises(pk.PruneError, match="calibration inputs of layer '0' hold NaN or infinite values"):
        pk.prune(model, None if "structure" in options else 0.5, score=score, data=x, **options)
    assert pk.sparsity(model) == 0


def test_too_little_data_names_the_layer():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(pk.PruneError, match="layer '0' saw 5 calibration input rows"):
        pk.prune(model, 0.5, score=pk.scores.Wanda(min_samples=64), data=torch.randn(5, 16))
    with pytest.raises(pk.PruneError, match="no batch"):
        pk.prune(model, 0.5, score="wanda", data=[])
    with pytest.raises(pk.PruneError, match="calibration data"):
        pk.prune(model, 0.5, score="wanda")
    assert pk.sparsity(model) == 0  # nothing pruned on failure


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.spare = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.used(x)


def test_layer_the_forward_never_reaches_is_named():
    with pytest.raises(pk.PruneError, match="'spare'"):
        pk.prune(Unused(), 0.5, score="wanda", data=torch.randn(8, 4))


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten())
    with pytest.raises(pk.PruneError, match="'0'.*groups=1"):
        pk.prune(model, 0.5, score="wanda", data=torch.randn(2, 4, 5, 5))


def test_dict_batches_are_keyword_inputs():
    class KW(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, input_ids):
            return self.fc(input_ids)

    x = torch.randn(10, 6)
    a, b = KW(), KW()
    b.load_state_dict(a.state_dict())
    got = pk.prune(a, 0.5, score="wanda", scope="row", data=[{"input_ids": x}])
    want = pk.prune(b, 0.5, score="wanda", scope="row", data=x)
    assert torch.equal(got["fc.weight"], want["fc.weight"])


def test_wanda_masks_are_monotone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8))
    x = torch.randn(32, 16)
    first = {k: v.clone() for k, v in pk.prune(model, 0.3, score="wanda", scope="row", data=x).items()}
    second = pk.prune(model, 0.6, score="wanda", scope="row", data=x)
    assert all(not bool((second[k] & ~first[k]).any()) for k in first)


@pytest.mark.parametrize("score,scope", [("wanda", "row"), ("sparsegpt", "layer")])
def test_low_precision_models_calibrate_in_float32(score, scope):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8)).to(torch.bfloat16)
    pk.prune(model, 0.5, score=score, scope=scope, data=torch.randn(32, 16, dtype=torch.bfloat16))
    assert pk.sparsity(model) == 0.5 and model[0].weight.dtype == torch.bfloat16
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


@pytest.mark.parametrize("scope", ["row", "layer"])
def test_wanda_on_float16_ranks_outlier_features_beyond_its_range(scope):
    """An outlier feature (as in LLMs) whose ‖X_j‖ exceeds float16's 65,504: the score is |W|·‖X_j‖ in
    float32, so a float16 model gets float32's masks. In float16 the norm became inf, already-zero weights
    scored 0·inf = NaN and row scope kept them (50.8 % instead of 50 %)."""
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    x[:, 3] *= 2e4
    x[:, 7] *= 1.5e4
    model = nn.Sequential(nn.Linear(64, 32)).half().float()  # float32 holding the float16 model's values
    with torch.no_grad():
        model[0].weight[:16, 3] = 0  # zeros already there (an earlier prune, a structured one)
    half = copy.deepcopy(model).half()
    masks = pk.prune(model, 0.5, score="wanda", scope=scope, data=x.half().float())
    half_masks = pk.prune(half, 0.5, score="wanda", scope=scope, data=x.half())
    assert pk.sparsity(half) == 0.5
    assert torch.equal(half_masks["0.weight"], masks["0.weight"])
