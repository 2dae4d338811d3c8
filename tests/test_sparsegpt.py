"""SparseGPT: OBS reconstruction against a plain transcription of the paper, exact masks, sequencing."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch import nn

import prunekit as pk
from prunekit import calibration
from prunekit.scores.obs import Pattern, inverse_factor, reconstruct


def paper(w, h, k_per_block=None, n=None, m=None, block=16, damp=0.01):
    """Algorithm 1 of Frantar & Alistarh 2023, column by column as in their reference code (slow, plain)."""
    w, h = w.clone(), h.clone()
    h[torch.arange(len(h)), torch.arange(len(h))] += damp * h.diagonal().mean()
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    cols = w.shape[1]
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, q1, e1, h1 = w[:, i1:i2].clone(), torch.zeros_like(w[:, i1:i2]), torch.zeros_like(w[:, i1:i2]), hinv[i1:i2, i1:i2]
        mask = torch.zeros_like(w1, dtype=torch.bool)
        if k_per_block is not None:
            tmp = (w1 ** 2 / h1.diagonal() ** 2).flatten()
            mask.view(-1)[tmp.argsort(stable=True)[:k_per_block]] = True
        for i in range(i2 - i1):
            if n is not None and i % m == 0:
                tmp = w1[:, i:i + m] ** 2 / h1.diagonal()[i:i + m] ** 2
                mask.scatter_(1, i + tmp.argsort(dim=1, stable=True)[:, : m - n], True)
            q = w1[:, i].clone()
            q[mask[:, i]] = 0
            e = (w1[:, i] - q) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1) @ h1[i, i:].unsqueeze(0)
            q1[:, i], e1[:, i] = q, e
        w[:, i1:i2] = q1
        w[:, i2:] -= e1 @ hinv[i1:i2, i2:]
    return w


def correlated(n=256, d=32, seed=0):
    """Inputs as activations look: a few shared factors plus noise, each feature on its own scale."""
    g = torch.Generator().manual_seed(seed)
    factors = torch.randn(n, 4, generator=g) @ torch.randn(4, d, generator=g)
    scale = torch.rand(d, generator=g) * 3 + 0.1
    return (torch.randn(n, d, generator=g) + factors) * scale


def hessian(x):
    return 2 * x.t() @ x / len(x)


def test_inverse_factor_is_the_upper_cholesky_factor_of_the_damped_inverse():
    h = hessian(correlated())
    damped = h + 0.01 * h.diagonal().mean() * torch.eye(len(h))
    want = torch.linalg.cholesky(torch.linalg.inv(damped), upper=True)
    assert torch.allclose(inverse_factor(h, 0.01), want, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8)])
def test_nm_reconstruction_matches_the_paper_loop(n, m):
    torch.manual_seed(0)
    w, h = torch.randn(12, 32), hessian(correlated())
    got, mask = reconstruct(w, inverse_factor(h, 0.01), Pattern(n=n, m=m), block=16, sub=8)
    assert torch.allclose(got, paper(w, h, n=n, m=m, block=16), atol=1e-4)
    assert bool(((~mask).view(-1, m).sum(1) == n).all())


def test_unstructured_reconstruction_matches_the_paper_loop():
    torch.manual_seed(1)
    w, h = torch.randn(12, 32), hessian(correlated(seed=1))
    got, mask = reconstruct(w, inverse_factor(h, 0.01), Pattern(count=12 * 32 // 2), block=16, sub=4)
    assert torch.allclose(got, paper(w, h, k_per_block=12 * 16 // 2, block=16), atol=1e-4)
    assert int(mask.sum()) == 12 * 16


def error(original: nn.Linear, pruned: nn.Linear, x: torch.Tensor) -> float:
    y = x @ original.weight.detach().t()
    return float((y - x @ pruned.weight.detach().t()).norm() / y.norm())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_reconstruction_error_sparsegpt_below_wanda_below_row_magnitude(seed, sparsity):
    torch.manual_seed(seed)
    layer, x = nn.Linear(64, 32), correlated(512, 64, seed)
    errs = {}
    for score in ("sparsegpt", "wanda", "magnitude"):
        model = copy.deepcopy(layer)
        pk.prune(model, sparsity, score=score, scope="row", data=None if score == "magnitude" else x)
        errs[score] = error(layer, model, x)
    model = copy.deepcopy(layer)
    pk.prune(model, sparsity, score="sparsegpt", scope="layer", data=x)
    assert error(layer, model, x) <= errs["wanda"]
    assert errs["sparsegpt"] <= errs["wanda"] <= errs["magnitude"]


def test_sparsegpt_changes_survivors_and_zeroes_exactly_the_mask():
    torch.manual_seed(0)
    layer = nn.Linear(32, 16)
    before = layer.weight.detach().clone()
    masks = pk.prune(layer, 0.5, score="sparsegpt", scope="layer", data=correlated())
    kept = masks["weight"]
    assert int((~kept).sum()) == 256 and bool((layer.weight[~kept] == 0).all())
    assert not torch.allclose(layer.weight[kept], before[kept])  # survivors moved to compensate


@pytest.mark.parametrize("scope,sparsity,want", [("layer", 0.3, [27, 25]), ("row", 0.3, [7 * 4, 12 * 2]),
                                                 ({"0": 0.6}, None, [55, 0])])
def test_counts_are_exact_for_every_supported_scope(scope, sparsity, want):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 7), nn.ReLU(), nn.Linear(7, 12))
    x = torch.randn(64, 13)
    masks = pk.prune(model, sparsity, score="sparsegpt", scope=scope, data=x)
    assert [int((~masks[k]).sum()) for k in ("0.weight", "2.weight")] == want
    if scope == "row":
        assert bool(((~masks["0.weight"]).sum(1) == 4).all())


@pytest.mark.parametrize("model,x", [
    (lambda: nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8)), torch.randn(40, 16)),
    (lambda: nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 5, 4)),
     torch.randn(6, 8, 5, 5)),
])
@pytest.mark.parametrize("nm", ["2:4", "1:4", "4:8"])
def test_nm_is_exact_per_block(model, x, nm):
    torch.manual_seed(0)
    net = model()
    structure = pk.structures.parse(nm)
    masks = pk.prune(net, score="sparsegpt", structure=nm, data=x)
    for name, mask in masks.items():
        module = net.get_submodule(name.rsplit(".", 1)[0])
        assert bool((structure.blocks(mask, module).sum(1) == structure.n).all())
        assert bool((structure.blocks(module.weight != 0, module).sum(1) <= structure.n).all())


def test_masks_stay_monotone_and_a_lower_target_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    x = torch.randn(64, 16)
    first = {k: v.clone() for k, v in pk.prune(model, 0.3, scope="layer").items()}
    second = pk.prune(model, 0.6, score="sparsegpt", scope="layer", data=x)
    for k in first:
        assert not bool((second[k] & ~first[k]).any())
        assert int((~second[k]).sum()) == round(0.6 * second[k].numel())
    weights = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(pk.PruneError, match="only remove more"):
        pk.prune(model, 0.4, score="sparsegpt", scope="layer", data=x)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))  # refused before any change


def test_global_scope_and_unit_structures_are_refused():
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    with pytest.raises(pk.PruneError, match="scope='layer', 'row'"):
        pk.prune(model, 0.5, score="sparsegpt", scope="global", data=torch.randn(8, 16))
    with pytest.raises(pk.PruneError, match="single weights"):
        pk.prune(model, 0.5, score="sparsegpt", structure="neurons", scope="layer", data=torch.randn(8, 16))
    assert pk.sparsity(model) == 0


def test_each_layer_sees_the_inputs_of_the_already_pruned_layers_before_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    x = torch.randn(64, 16)
    ref = copy.deepcopy(model)
    pk.prune(model, 0.5, score="sparsegpt", scope="layer", data=x)
    with torch.no_grad():
        w0, _ = reconstruct(ref[0].weight, inverse_factor(hessian(x), 0.01), Pattern(count=192))
        ref[0].weight.copy_(w0)
        hidden = torch.relu(ref[0](x))
        w2, _ = reconstruct(ref[2].weight, inverse_factor(hessian(hidden), 0.01), Pattern(count=96))
    assert torch.allclose(model[0].weight, w0, atol=1e-5)
    assert torch.allclose(model[2].weight, w2, atol=1e-5)


class Attention(nn.Module):
    """q, k and v read one input; out reads their product: three layers share a calibration pass."""

    def __init__(self, d=16):
        super().__init__()
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), -1)
        return self.out(a @ self.v(x))


def test_layers_sharing_an_input_share_one_calibration_pass():
    model = Attention()
    layers = calibration.layer_names(model, [model.q, model.k, model.v, model.out])
    assert calibration.order(model, layers, torch.randn(2, 5, 16)) == ([["q", "k", "v"], ["out"]], set(layers))
    model.calls, outs = 0, []
    model.out.register_forward_hook(lambda *a: outs.append(1))
    data = [torch.randn(2, 5, 16) for _ in range(3)]
    pk.prune(model, 0.5, score="sparsegpt", scope="row", data=data)
    assert model.calls == 1 + 1 + 2 * 3  # fit check, order, one pass per group
    assert len(outs) == 2  # calibration passes end once their group has its inputs: out itself never ran


def test_a_layer_called_twice_per_forward_sees_every_call():
    fc = nn.Linear(6, 6)
    model = nn.Sequential(fc, nn.ReLU(), fc)
    layers = {"0": fc}
    assert calibration.order(model, layers, torch.randn(3, 6)) == ([["0"]], set())
    stats = calibration.collect(model, layers, [torch.randn(3, 6)] * 2, calibration.Gram, stop=False)
    assert stats["0"].n == 12
    pk.prune(model, 0.5, score="sparsegpt", scope="layer", data=torch.randn(8, 6))
    assert int((fc.weight == 0).sum()) == 18


def test_bad_calibration_data_names_the_layer():
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    with pytest.raises(pk.PruneError, match="layer '0' saw 4 calibration input rows"):
        pk.prune(model, 0.5, score=pk.scores.SparseGPT(min_samples=16), scope="layer", data=torch.randn(4, 16))
    with pytest.raises(pk.PruneError, match="'0'"):
        pk.prune(model, 0.5, score="sparsegpt", scope="layer", data=torch.randn(4, 17))
    assert pk.sparsity(model) == 0


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 40), fraction=st.floats(0, 0.95), pre_fraction=st.floats(0, 1),
       per_row=st.booleans(), late=st.booleans(), block=st.sampled_from([1, 3, 8, 128]), seed=st.integers(0, 99))
def test_counts_stay_exact_with_earlier_pruning_anywhere(rows, cols, fraction, pre_fraction, per_row, late, block, seed):
    g = torch.Generator().manual_seed(seed)
    w, x = torch.randn(rows, cols, generator=g), torch.randn(3 * cols, cols, generator=g)
    k = round(fraction * (cols if per_row else rows * cols))
    pre = torch.zeros(rows, cols, dtype=torch.bool)
    for r in range(rows) if per_row else [None]:  # earlier pruning, crowded into the last columns when late
        n_pre = int(pre_fraction * k)
        cells = (torch.arange(cols).flip(0) if late else torch.randperm(cols, generator=g))[:n_pre] if per_row \
            else ((torch.arange(rows * cols).flip(0) if late else torch.randperm(rows * cols, generator=g))[:n_pre])
        (pre[r] if per_row else pre.view(-1))[cells] = True
    pattern = Pattern(per_row=k) if per_row else Pattern(count=k)
    got, mask = reconstruct(w.masked_fill(pre, 0), inverse_factor(hessian(x), 0.01), pattern, pre, block=block)
    assert bool((mask | ~pre).all())  # earlier pruning stays
    counts = mask.sum(1) if per_row else mask.sum().view(1)
    assert bool((counts == k).all())
    assert bool((got[mask] == 0).all())


class TinyGPT(nn.Module):
    """One pre-norm block with a fused qkv Linear, an MLP and an LM head: the shape calibration meets in LMs."""

    def __init__(self, vocab=32, d=16):
        super().__init__()
        self.embed, self.ln1, self.ln2 = nn.Embedding(vocab, d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2, self.head = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.embed(ids)
        q, k, v = self.qkv(self.ln1(x)).chunk(3, -1)
        x = x + self.proj(nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
        x = x + self.fc2(torch.relu(self.fc1(self.ln2(x))))
        return self.head(x)


@pytest.mark.parametrize("score,kw", [("sparsegpt", {"scope": "layer", "sparsity": 0.5}),
                                      ("sparsegpt", {"structure": "2:4"}),
                                      ("wanda", {"scope": "row", "sparsity": 0.5}),
                                      ("wanda", {"structure": "2:4"})])
def test_a_small_language_model_prunes_from_token_windows(score, kw):
    torch.manual_seed(0)
    model = TinyGPT()
    ids = torch.randint(32, (8, 24))
    dense = copy.deepcopy(model)
    pk.prune(model, score=score, data=[(ids[i:i + 2], ids[i:i + 2]) for i in range(0, 8, 2)], **kw)
    assert pk.sparsity(model) == 0.5
    magnitude = copy.deepcopy(dense)
    pk.prune(magnitude, **{**kw, "scope": "row" if "sparsity" in kw else None})
    with torch.no_grad():
        ref = dense(ids)
        assert (model(ids) - ref).norm() < (magnitude(ids) - ref).norm()  # calibration beats magnitude here


def test_a_layer_called_through_its_weight_only_is_named():
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)  # MHA uses out_proj.weight, not out_proj()
    with pytest.raises(pk.PruneError, match="self_attn.out_proj"):
        pk.prune(layer, 0.5, score="sparsegpt", scope="layer", data=torch.randn(2, 5, 16))
