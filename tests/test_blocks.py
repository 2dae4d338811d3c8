"""Depth pruning: residual blocks are found by tracing, removed as the identity, and compacted away."""
from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import prunekit as pk
from prunekit.graph.blocks import find_blocks

torch.manual_seed(0)


class ProjBlock(nn.Module):
    """torchvision-style basic block: a 1x1 conv + BN projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int = 1):
        super().__init__()
        cout = 4 * mid
        self.body = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                                  nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                                  nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else None)

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.body(x)
        out += identity
        return torch.relu(out)


def _net(blocks: list[nn.Module], cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, cin, 3, 1, 1), nn.BatchNorm2d(cin), nn.ReLU(), nn.Sequential(*blocks),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cout, 10))


class InvertedResidual(nn.Module):
    """MobileNetV2: expand 1x1, depthwise 3x3, project 1x1 (linear); a shortcut only when the shape stays."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


def _trained_bn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give BatchNorms non-trivial running statistics so that eval outputs are not degenerate."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def _removable(model, x):
    return {b.name: b.removable for b in find_blocks(model, x)}


def _prune_compact(model, x, **kw):
    pk.prune(model, structure="blocks", example_inputs=x, **kw)
    small = pk.compact(model, x)
    with torch.no_grad():
        assert torch.allclose(model(x), small(x), atol=1e-5)
    return small


def test_resnet_option_a_blocks_found_and_padded_ones_stay():
    model, x = pk.models.create("resnet20").eval(), torch.randn(2, 3, 32, 32)
    found = {b.name: b for b in find_blocks(model, x)}
    assert sorted(found) == [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
    assert {n for n, b in found.items() if not b.removable} == {"layer2.0", "layer3.0"}
    assert found["layer2.0"].shortcut == "padded" and found["layer1.1"].shortcut == "identity"
    pk.prune(model, structure="blocks", score="random", example_inputs=x, sparsity=0.99)
    small = pk.compact(model, x)
    assert len(small.layer1) + len(small.layer2) + len(small.layer3) == 3  # one removable block stays
    assert small.layer2[0].downsample and small.layer3[0].downsample


@pytest.mark.parametrize("make,cout", [
    (lambda: [ProjBlock(8, 8), ProjBlock(8, 16, 2), ProjBlock(16, 16), ProjBlock(16, 16)], 16),
    (lambda: [Bottleneck(8, 4), Bottleneck(16, 4), Bottleneck(16, 8, 2), Bottleneck(32, 8)], 32),
])
def test_projection_shortcut_blocks_are_found_but_never_removed(make, cout):
    x = torch.randn(4, 3, 16, 16)
    model = _trained_bn(_net(make(), 8, cout), x)
    found = {b.name: b for b in find_blocks(model, x)}
    assert sorted(found) == ["3.0", "3.1", "3.2", "3.3"]
    projection = {n for n, b in found.items() if b.shortcut == "projection"}
    assert projection and all(not found[n].removable for n in projection)
    assert all(found[n].removable for n in found if n not in projection)
    small = _prune_compact(model, x, score="block-influence", sparsity=0.5)
    assert len(small[3]) == len(found) - round(0.5 * (len(found) - len(projection)))
    assert sum(m.down is not None for m in small[3]) == len(projection)


def test_inverted_residuals_with_and_without_shortcut():
    x = torch.randn(4, 3, 16, 16)
    blocks = [InvertedResidual(8, 8, 1), InvertedResidual(8, 16, 2), InvertedResidual(16, 16, 1),
              InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 1)]
    model = _trained_bn(_net(blocks, 8, 24), x)
    assert _removable(model, x) == {"3.0": True, "3.2": True, "3.3": True}  # no shortcut: not a block
    small = _prune_compact(model, x, score="branch-norm", sparsity=0.67)
    assert len(small[3]) == 3


def _encoder(norm_first: bool) -> nn.Module:
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
    return nn.TransformerEncoder(layer, 4, enable_nested_tensor=False).eval()


def test_prenorm_transformer_encoder_loses_layers_postnorm_keeps_them():
    x = torch.randn(2, 5, 32)
    model = _encoder(True)
    assert _removable(model, x) == {f"layers.{i}": True for i in range(4)}
    small = _prune_compact(model, x, score="block-influence", sparsity=0.5)
    assert len(small.layers) == 2
    assert not any(b.removable for b in find_blocks(_encoder(False), x))  # a norm follows each residual add
    with pytest.raises(pk.NoPrunableLayersError, match="no removable residual block"):
        pk.prune(_encoder(False), structure="blocks", example_inputs=x, score="random", sparsity=0.5)


def test_transformers_decoder_layers_shrink_and_cache_still_works():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(num_hidden_layers=4, hidden_size=32, intermediate_size=64,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                                      bos_token_id=0, eos_token_id=1, pad_token_id=1)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(2, 64, (2, 6))
    pk.prune(model, structure="blocks", score="block-influence", example_inputs=ids, sparsity=0.5)
    small = pk.compact(model, ids)
    assert len(small.model.layers) == 2 and small.config.num_hidden_layers == 2
    assert [l.self_attn.layer_idx for l in small.model.layers] == [0, 1]
    assert model.config.num_hidden_layers == 4  # the masked model is untouched
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, small(ids).logits, atol=1e-5)
        full = small(ids).logits[:, -1]
        past = small(ids[:, :-1], use_cache=True).past_key_values
        step = small(ids[:, -1:], past_key_values=past, use_cache=True).logits[:, -1]
    assert torch.allclose(full, step, atol=1e-5)
    a = model.generate(ids, max_new_tokens=4, do_sample=False)
    b = small.generate(ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(a, b)


def test_macs_target_met_and_compaction_equals_masking():
    model, x = pk.models.create("resnet20").eval(), torch.randn(2, 3, 32, 32)
    dense = pk.summary(model, x).macs
    small = _prune_compact(model, x, score="block-influence", macs_reduction=1.8)
    assert dense / pk.summary(small, x).macs >= 1.8


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), sparsity=st.floats(0.0, 0.95))
def test_shape_changing_blocks_are_never_chosen(seed, sparsity):
    model, x = pk.models.create("resnet20").eval(), torch.randn(1, 3, 32, 32)
    pk.prune(model, structure="blocks", score="random", seed=seed, example_inputs=x, sparsity=sparsity)
    for name in ("layer2.0", "layer3.0"):
        assert all(bool(p.ne(0).any()) for p in model.get_submodule(name).parameters() if p.dim() > 1)
    with torch.no_grad():
        assert model(x).shape == (1, 10)


def test_removed_blocks_stay_removed_and_scores_rank_them():
    model, x = pk.models.create("resnet20").eval(), torch.randn(2, 3, 32, 32)
    pk.prune(model, structure="blocks", score="random", example_inputs=x, sparsity=0.3)
    gone = {n for n, m in model.named_modules() if n.count(".") == 1 and all(
        not bool(p.any()) for p in m.parameters())}
    pk.prune(model, structure="blocks", score="block-influence", example_inputs=x, sparsity=0.6)
    now = {n for n, m in model.named_modules() if n.count(".") == 1 and all(not bool(p.any()) for p in m.parameters())}
    assert gone < now and len(now) == 4  # 7 removable blocks: round(0.3 × 7) = 2, then round(0.6 × 7) = 4


def test_block_scores_measure_what_they_say():
    x = torch.randn(8, 3, 16, 16)
    model = _trained_bn(_net([ProjBlock(8, 8), ProjBlock(8, 8), ProjBlock(8, 8)], 8, 8), x)
    with torch.no_grad():  # the middle block's branch is silenced: it is the identity already
        model[3][1].bn2.weight.zero_()
        model[3][1].bn2.bias.zero_()
    blocks = [(n, model[3][i]) for i, n in enumerate(["3.0", "3.1", "3.2"])]
    y = torch.randint(0, 10, (8,))
    for name in ("block-influence", "branch-norm", "skip-loss"):
        score = pk.scores.registry.get(name)
        s = score.blocks(model, blocks, x, score.prepare(model, [], (x, y), None))
        assert s.shape == (3,) and abs(float(s[1])) < 1e-6 and float(s[0]) != 0 and float(s[2]) != 0
    inp, out = {}, {}
    def grab(module, args, output):
        inp[0], out[0] = args[0], output

    h = model[3][0].register_forward_hook(grab)
    bi = pk.scores.registry.get("block-influence")
    s = bi.blocks(model, blocks[:1], x, None)
    h.remove()
    a, b = inp[0].movedim(1, -1).reshape(-1, 8), out[0].movedim(1, -1).reshape(-1, 8)
    assert float(s[0]) == pytest.approx(float(1 - torch.nn.functional.cosine_similarity(a, b, dim=1).mean()), rel=1e-5)


def test_scores_that_cannot_rank_blocks_say_which_can():
    model, x = pk.models.create("resnet20").eval(), torch.randn(2, 3, 32, 32)
    with pytest.raises(pk.PruneError, match="block-influence"):
        pk.prune(model, structure="blocks", score="magnitude", example_inputs=x, sparsity=0.5)
    with pytest.raises(pk.PruneError, match="example_inputs"):
        pk.prune(model, structure="blocks", score="random", sparsity=0.5)


def test_compacted_block_model_saves_and_loads(tmp_path):
    model, x = pk.models.create("resnet20").eval(), torch.randn(2, 3, 32, 32)
    pk.prune(model, structure="blocks", score="block-influence", example_inputs=x, sparsity=0.5)
    small = pk.compact(model, x)
    pk.save_compact(small, tmp_path / "m")
    back = pk.load_compact(tmp_path / "m", lambda: pk.models.create("resnet20"))
    with torch.no_grad():
        assert torch.allclose(back.eval()(x), small(x), atol=1e-6)


def test_block_whose_zeroed_form_is_not_the_identity_stays():
    x = torch.randn(2, 3, 8, 8)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), ProjBlock(8, 8), nn.Flatten(), nn.Linear(512, 2)).eval()
    (block,) = find_blocks(model, x)  # its input can be negative, so relu(x + 0) != x
    assert block.shortcut == "identity" and not block.removable and "not the identity" in block.reason


def test_width_and_depth_meet_one_macs_target_and_report_the_mix():
    model, x = pk.models.create("resnet20").eval(), torch.randn(1, 3, 32, 32)
    dense = pk.summary(model, x).macs
    pk.prune(model, structure=["blocks", "channels"], example_inputs=x, macs_reduction=3, depth_share=0.5)
    mix = pk.structures.allocation(model, x)
    assert 1 <= len(mix.blocks_removed) < mix.blocks_total == 7
    assert any(kept < total for kept, total in mix.widths.values())
    small = pk.compact(model, x)
    with torch.no_grad():
        assert torch.allclose(model(x), small(x), atol=1e-4)
    assert mix.macs_reduction == pytest.approx(dense / pk.summary(small, x).macs) and mix.macs_reduction >= 3
    assert "blocks removed" in str(mix)


def test_depth_share_one_is_depth_only():
    model, x = pk.models.create("resnet20").eval(), torch.randn(1, 3, 32, 32)
    pk.prune(model, structure=["channels", "blocks"], example_inputs=x, macs_reduction=1.5, depth_share=1.0)
    mix = pk.structures.allocation(model, x)
    assert mix.blocks_removed and all(kept == total for kept, total in mix.widths.values())
    with pytest.raises(pk.PruneError, match="blocks' and 'channels"):
        pk.prune(model, structure=["blocks", "weights"], example_inputs=x, macs_reduction=2)


def test_latency_target_takes_the_fewest_blocks_measured_fast_enough(monkeypatch):
    """The bisection on measured speedups (here a stand-in timer: speedup = MAC ratio) removes the fewest blocks."""
    import prunekit.latency as latency

    def fake(reference, small, example_inputs, repeats=15):
        return pk.summary(reference, example_inputs).macs / pk.summary(small, example_inputs).macs

    monkeypatch.setattr(latency, "speedup", fake)
    x = torch.randn(1, 3, 32, 32)
    a, b = pk.models.create("resnet20").eval(), pk.models.create("resnet20").eval()
    b.load_state_dict(a.state_dict())
    pk.prune(a, structure="blocks", score="block-influence", example_inputs=x, latency_reduction=1.4)
    pk.prune(b, structure="blocks", score="block-influence", example_inputs=x, macs_reduction=1.4)
    removed = [n for n, m in a.named_modules() if n.count(".") == 1 and not any(bool(p.any()) for p in m.parameters())]
    assert removed == [n for n, m in b.named_modules() if n.count(".") == 1
                       and not any(bool(p.any()) for p in m.parameters())] and removed
    with pytest.raises(pk.InvalidSparsityError, match="unreachable here"):
        pk.prune(pk.models.create("resnet20").eval(), structure="blocks", score="random", example_inputs=x,
                 latency_reduction=50)


def test_width_and_depth_meet_a_latency_target(monkeypatch):
    import prunekit.latency as latency

    def fake(reference, small, example_inputs, repeats=15):  # a stand-in timer: time proportional to MACs
        return pk.summary(reference, example_inputs).macs / pk.summary(small, example_inputs).macs

    monkeypatch.setattr(latency, "speedup", fake)
    model, x = pk.models.create("resnet20").eval(), torch.randn(1, 3, 32, 32)
    dense = copy.deepcopy(model)
    pk.prune(model, structure=["blocks", "channels"], example_inputs=x, latency_reduction=2.0)
    mix = pk.structures.allocation(model, x)
    assert mix.blocks_removed and any(kept < total for kept, total in mix.widths.values())
    assert fake(dense, pk.compact(model, x), x) >= 2.0


def test_excluded_blocks_stay():
    model, x = pk.models.create("resnet20").eval(), torch.randn(1, 3, 32, 32)
    pk.prune(model, structure="blocks", score="random", example_inputs=x, sparsity=0.99, exclude=["layer1.1", "layer3.2.conv1"])
    from prunekit.graph.blocks import is_removed

    removed = {n for n, m in model.named_modules() if n.count(".") == 1 and is_removed(m)}
    assert len(removed) == 4 and not removed & {"layer1.1", "layer3.2", "layer2.0", "layer3.0"}
