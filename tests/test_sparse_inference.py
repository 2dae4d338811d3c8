"""pk.sparsify: sparse kernels where they are faster, outputs equal to the dense model."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit.sparse import SparseLinear, SparsePointwiseConv


def assert_same(fast: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        want, got = model(x), fast(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_mlp_outputs_equal_with_sparse_kernels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    pk.prune(model, sparsity=0.9, scope="layer")
    x = torch.randn(5, 64)
    fast = pk.sparsify(model, x, policy="sparse")
    assert isinstance(fast[0], SparseLinear) and isinstance(fast[2], SparseLinear)
    assert_same(fast, model, x)
    assert_same(fast, model, torch.randn(3, 7, 64))  # any leading shape, any batch
    assert pk.Masks.from_model(model) and not pk.Masks.from_model(fast)  # original untouched


def test_pointwise_convs_and_other_convs():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 1), nn.Flatten(2), nn.Conv1d(32, 8, 1, bias=False)
    ).eval()
    pk.prune(model, sparsity=0.8, scope="layer")
    x = torch.randn(2, 3, 9, 9)
    fast = pk.sparsify(model, x, policy="sparse")
    assert isinstance(fast[0], nn.Conv2d)  # 3x3 convs stay dense
    assert isinstance(fast[2], SparsePointwiseConv) and isinstance(fast[4], SparsePointwiseConv)
    assert_same(fast, model, x)


def test_transformer_encoder():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 128, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    pk.prune(model, sparsity=0.9, scope="layer")
    x = torch.randn(2, 6, 32)
    fast = pk.sparsify(model, x, policy="sparse")
    chosen = {c.name for c in fast.sparsify_plan if c.choice == "csr"}
    assert {"layers.0.linear1", "layers.1.linear2"} <= chosen
    assert_same(fast, model, x)


def test_per_layer_fallback_to_dense():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2048), nn.ReLU(), nn.Linear(2048, 2048))
    pk.prune(model, sparsity=0.0, scope={"0": 0.5, "2": 0.5, "4": 0.995})
    fast = pk.sparsify(model.eval(), torch.randn(1, 256), repeats=9)
    plan = {c.name: c for c in fast.sparsify_plan}
    assert plan["0"].choice == "dense" and "slower" in plan["0"].reason
    assert plan["4"].choice == "csr" and plan["4"].sparse_ms < plan["4"].dense_ms
    assert isinstance(fast[0], nn.Linear) and isinstance(fast[4], SparseLinear)
    assert "dense ms" in str(fast.sparsify_plan)
    assert_same(fast, model, torch.randn(1, 256))


def test_dense_layers_below_min_sparsity_are_not_timed():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    pk.prune(model, sparsity=0.0, scope={"0": 0.25, "1": 0.75})
    fast = pk.sparsify(model, torch.randn(1, 8), policy="sparse")
    assert [c.name for c in fast.sparsify_plan] == ["1"]


def test_2_4_off_gpu_warns_and_stays_dense():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64))
    pk.prune(model, structure="2:4")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = pk.sparsify(model, torch.randn(64, 64), repeats=5)
    assert any("compute capability >= 8.0" in str(w.message) for w in caught)
    assert fast.sparsify_plan[0].choice in ("dense", "csr")  # never "2:4" without the GPU


def test_densify_gives_back_plain_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU()).eval()
    pk.prune(model, sparsity=0.9)
    fast = pk.sparsify(model, torch.randn(2, 16), policy="sparse")
    dense = pk.densify(fast)
    assert type(dense[0]) is nn.Linear and isinstance(fast[0], SparseLinear)
    assert torch.equal(dense[0].weight, model[0].weight)
    again = copy.deepcopy(fast)  # torch cannot deepcopy CSR tensors by itself
    assert torch.equal(again[0].weight.to_dense(), model[0].weight)
    x = torch.randn(3, 16, requires_grad=True)
    fast(x).sum().backward()  # usable outside no_grad: not built from inference tensors
    assert x.grad is not None


def test_bad_policy():
    with pytest.raises(pk.PruneError, match="policy"):
        pk.sparsify(nn.Linear(2, 2), torch.randn(1, 2), policy="fastest")


class _RoundedKernel(nn.Module):
    """A stand-in half-precision sparse kernel: the dense result moved ``ulps`` rounding steps up."""

    def __init__(self, layer: nn.Linear, ulps: int):
        super().__init__()
        self.layer, self.ulps = layer, ulps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        for _ in range(self.ulps):
            out = torch.nextafter(out, torch.full_like(out, float("inf")))
        return out


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("ulps,taken", [(1, True), (40, False)])
def test_half_precision_kernels_are_judged_by_their_own_rounding(dtype, ulps, taken, monkeypatch):
    """A half-precision kernel one rounding step from dense (as 2:4 tensor cores are) is taken; a fixed
    rtol of 1e-4, below a float16 ulp, refused every one. Far off stays refused."""
    from prunekit.sparse import inference

    monkeypatch.setattr(inference, "sparse_layer", lambda layer: _RoundedKernel(layer, ulps))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32)).to(dtype).eval()
    pk.prune(model, sparsity=0.9)
    fast = pk.sparsify(model, torch.randn(8, 64, dtype=dtype), policy="sparse")
    choice = fast.sparsify_plan[0]
    assert (choice.choice == "csr") is taken
    assert taken or "differs beyond rtol" in choice.reason
