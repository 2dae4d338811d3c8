"""Dependency graph, group scores, allocation and the error paths of structured pruning."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st
from test_graph_models import cifar_resnet, mlp
from torch import nn

import prunekit as pk
from prunekit.graph import trace, units_of


def widths(model):
    return [m.out_features for m in model if isinstance(m, nn.Linear)]


def conv_bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def test_resnet_graph_couples_the_residual_stream_and_locks_pads_and_outputs():
    graph = trace(cifar_resnet(20), torch.randn(1, 3, 32, 32))
    units, locked = units_of(graph)
    stem = {graph.find(int(e)) for e in graph.slots[("conv1", "weight", 0)]}
    block_out = {graph.find(int(e)) for e in graph.slots[("layer1.2.conv2", "weight", 0)]}
    assert stem == block_out and not stem & locked  # one residual stream, prunable
    stage2 = [graph.find(int(e)) for e in graph.slots[("layer2.0.conv2", "weight", 0)]]
    assert all(r in locked for r in stage2[:8] + stage2[24:])  # zero-padded channels stay
    assert set(stage2[8:24]) == stem  # the padded shortcut carries the stage-1 channels
    classifier = {graph.find(int(e)) for e in graph.slots[("linear", "weight", 0)]}
    assert classifier <= locked
    inner = {graph.find(int(e)) for e in graph.slots[("layer1.0.conv1", "weight", 0)]}
    assert len(inner) == 16 and not inner & stem


def test_sparsity_counts_units_exactly_and_layer_scope_is_uniform():
    model = mlp().eval()
    pk.prune(model, 0.25, structure="channels", example_inputs=torch.randn(2, 64), scope="layer")
    small = pk.compact(model, torch.randn(2, 64))
    assert widths(small) == [36, 24, 10]
    model = mlp().eval()
    pk.prune(model, 0.5, structure="channels", example_inputs=torch.randn(2, 64))
    assert sum(widths(pk.compact(model, torch.randn(2, 64)))[:2]) == 40  # 40 of 80 units, any split


def test_guard_max_ratio_and_round_to():
    x = torch.randn(2, 64)
    model = mlp().eval()
    pk.prune(model, 0.99, structure="channels", example_inputs=x, scope="layer")
    assert all(w >= 1 for w in widths(pk.compact(model, x)))
    model = mlp().eval()
    pk.prune(model, 0.9, structure="channels", example_inputs=x, max_ratio=0.5)
    assert widths(pk.compact(model, x))[:2] == [24, 16]
    model = mlp().eval()
    pk.prune(model, 0.3, structure="channels", example_inputs=x, round_to=8, scope="layer")
    assert [w % 8 for w in widths(pk.compact(model, x))[:2]] == [0, 0]


@settings(max_examples=6, deadline=None)
@given(target=st.floats(1.2, 3.0))
def test_macs_reduction_target_is_reached(target):
    model, x = cifar_resnet(20).eval(), torch.randn(1, 3, 32, 32)
    pk.prune(model, structure="channels", example_inputs=x, macs_reduction=target)
    s = pk.summary(model, x)
    assert target <= s.speedup < target * 1.1
    assert pk.summary(pk.compact(model, x), x).macs == s.nonzero_macs


def test_bn_scale_removes_smallest_gammas():
    model, x = conv_bn_net(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([5.0, 0.1, 4.0, 0.2, 3.0, 0.3, 2.0, 0.4]))
    pk.prune(model, 0.5, structure="channels", example_inputs=x, score="bn-scale", scope="layer")
    assert model[1].weight_mask.tolist() == [True, False] * 4


def test_l1_l2_and_fpgm_rank_differently():
    lin = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        lin[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.1, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]]))
        lin[0].bias.zero_()
        lin[2].weight.fill_(0.1)
    x = torch.randn(2, 4)
    kept = {}
    for score in ("l1", "l2", "fpgm"):
        model = pk_copy(lin)
        pk.prune(model, 0.34, structure="channels", example_inputs=x, score=score, scope="layer", reduce="max")
        kept[score] = model[0].weight_mask[:, 0].tolist()
    assert kept["l1"] == [True, False, True]  # |row| sums 4, 2.1, 12
    assert kept["l2"] == [False, True, True]  # norms 2, 2.1, 6
    assert kept["fpgm"] == [False, True, True]  # row 0 lies between the others


def pk_copy(model):
    import copy

    return copy.deepcopy(model)


def test_taylor_needs_data_and_random_is_seeded():
    model, x = conv_bn_net(), torch.randn(4, 3, 8, 8)
    with pytest.raises(pk.MissingDataError):
        pk.prune(model, 0.5, structure="channels", example_inputs=x, score="taylor")
    pk.prune(model, 0.5, structure="channels", example_inputs=x, score="taylor", data=(x, torch.tensor([0, 1, 2, 0])),
             scope="layer")
    assert int(model[0].weight_mask[:, 0, 0, 0].sum()) == 4
    a, b = conv_bn_net(), conv_bn_net()
    for m in (a, b):
        pk.prune(m, 0.5, structure="channels", example_inputs=x, score="random", seed=3)
    assert torch.equal(a[0].weight_mask, b[0].weight_mask)


@pk.scores.register("test-index")
class IndexScore(pk.scores.Score):
    """Scores slice i as i, so the lowest-index units go first."""

    def slices(self, weight, dim, context):
        return torch.arange(weight.shape[dim], dtype=torch.float32)


def test_group_scores_come_from_a_registry_by_name_or_object():
    assert {"l1", "l2", "bn-scale", "taylor", "fpgm", "random", "test-index"} <= set(pk.scores.registry.names())
    for spec in ("test-index", IndexScore(), IndexScore):
        model = mlp()
        pk.prune(model, 0.25, structure="channels", example_inputs=torch.randn(2, 64), score=spec, scope="layer")
        kept = model[1].weight_mask[:, 0]
        assert not kept[: kept.numel() // 4].any() and kept[kept.numel() // 4:].all()
    with pytest.raises(pk.UnknownNameError, match="valid scores"):
        pk.prune(mlp(), 0.5, structure="channels", example_inputs=torch.randn(2, 64), score="nonexistent")  # "snip" is a real score now


def test_taylor_sums_w_times_grad_over_the_unit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    loss = nn.functional.cross_entropy(model(x), y)
    gw0, gb0, gw2 = torch.autograd.grad(loss, [model[0].weight, model[0].bias, model[2].weight])
    w0, b0, w2 = model[0].weight.detach(), model[0].bias.detach(), model[2].weight.detach()
    expected = (w0 * gw0).abs().sum(1) + (b0 * gb0).abs() + (w2 * gw2).abs().sum(0)
    pk.prune(model, 0.5, structure="channels", example_inputs=x, score="taylor", data=(x, y), reduce="sum",
             normalize=False)
    keep = torch.zeros(6, dtype=torch.bool)
    keep[expected.topk(3).indices] = True
    assert model[0].weight_mask[:, 0].tolist() == keep.tolist()


def test_pruning_twice_is_monotone():
    model, x = mlp().eval(), torch.randn(2, 64)
    pk.prune(model, 0.25, structure="channels", example_inputs=x)
    first = model[1].weight_mask.clone()
    pk.prune(model, 0.5, structure="channels", example_inputs=x)
    assert bool((model[1].weight_mask <= first).all())
    assert sum(widths(pk.compact(model, x))[:2]) == 40


class Einsum(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.mix = nn.Linear(6, 2)

    def forward(self, x):
        return self.mix(torch.einsum("bi,ij->bj", self.fc(x), torch.eye(6)))


class HardCoded(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.fc(x).view(-1, 6))


def test_unresolvable_op_names_op_and_layer():
    with pytest.raises(pk.UnsupportedOperationError, match=r"'einsum'.*'Einsum'"):
        pk.prune(Einsum(), 0.5, structure="channels", example_inputs=torch.randn(2, 4))


def test_hard_coded_size_refuses_to_compact():
    model, x = HardCoded(), torch.randn(2, 4)
    pk.prune(model, 0.5, structure="channels", example_inputs=x)
    with pytest.raises(pk.CompactionError, match="hard-codes"):
        pk.compact(model, x)


def test_argument_errors():
    model, x = mlp(), torch.randn(2, 64)
    with pytest.raises(pk.PruneError, match="example_inputs"):
        pk.prune(model, 0.5, structure="channels")
    with pytest.raises(pk.InvalidSparsityError):
        pk.prune(model, 1.5, structure="channels", example_inputs=x)
    with pytest.raises(pk.InvalidSparsityError):
        pk.prune(model, 0.5, structure="channels", example_inputs=x, macs_reduction=2.0)
    with pytest.raises(pk.InvalidSparsityError, match="unreachable"):
        pk.prune(model, structure="channels", example_inputs=x, macs_reduction=1000.0)
    with pytest.raises(pk.UnknownNameError):
        pk.prune(model, 0.5, structure="channels", example_inputs=x, score="nope")
    with pytest.raises(pk.UnknownNameError):
        pk.prune(model, 0.5, structure="channels", example_inputs=x, reduce="median")
    with pytest.raises(pk.NoPrunableLayersError):
        pk.prune(model, 0.5, structure="heads", example_inputs=x)
    with pytest.raises(pk.NoPrunableLayersError):
        pk.prune(model, 0.5, structure="channels", example_inputs=x, exclude=[nn.Linear])
    with pytest.raises(pk.PruneError, match="graph options|structure"):
        pk.prune(model, 0.5, example_inputs=x)


@settings(max_examples=15, deadline=None)
@given(widths_=st.lists(st.integers(1, 12), min_size=1, max_size=3), sparsity=st.floats(0, 0.95),
       scope=st.sampled_from(["global", "layer"]), score=st.sampled_from(["l1", "l2", "fpgm", "random"]))
def test_any_mlp_compacts_to_equal_outputs(widths_, sparsity, scope, score):
    dims = [5, *widths_, 3]
    layers = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model, x = nn.Sequential(*layers[:-1]).eval(), torch.randn(3, 5)
    pk.prune(model, sparsity, structure="channels", example_inputs=x, scope=scope, score=score)
    small = pk.compact(model, x)
    torch.testing.assert_close(small(x), model(x), atol=1e-5, rtol=1e-5)
    kept = [m.out_features for m in small if isinstance(m, nn.Linear)][:-1]
    n = sum(widths_)
    if scope == "global":  # exact count, except what the guard (one unit per layer) refuses
        assert n - sum(kept) == min(round(sparsity * n), n - len(widths_))
    else:
        assert kept == [w - min(round(sparsity * w), w - 1) for w in widths_]


def test_exclude_keeps_a_layer_whole():
    model, x = mlp().eval(), torch.randn(2, 64)
    pk.prune(model, 0.5, structure="channels", example_inputs=x, exclude=["1"])
    assert widths(pk.compact(model, x))[:2] == [48, 16]


def test_pretrained_resnet56_compacts_exactly():
    ckpt = Path(__file__).resolve().parents[2] / "shared" / "models" / "cifar10-resnet" / "resnet56-4bfd9763.th"
    if not ckpt.is_file():
        pytest.skip("pretrained ResNet-56 not present")
    model = cifar_resnet(56)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    pk.prune(model, structure="channels", example_inputs=x, macs_reduction=2.0, scope="layer")
    small = pk.compact(model, x)
    torch.testing.assert_close(small(x), model(x), atol=1e-5, rtol=1e-5)
    assert pk.summary(model, x).macs / pk.summary(small, x).macs >= 2.0
