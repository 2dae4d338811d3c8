"""Constructs third-party models use, rebuilt by hand: compacted outputs equal the masked model's.

Each is checked on the example input, on another batch size, on another sequence length or
resolution, and with a padding mask where attention has one; refusals are specific PruneErrors.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st
from construct_models import (BiasedSDPA, CaiTStyleAttention, ChannelShuffle, ChecksWidth, Encoder, HeadFirstAttention,
                              InnerDimAttention, PlainShuffle, ShapeAs, SplitByAttr, SwinStage, T5Like,
                              TalkingHeadsAttention, TwoAttrWidth, UnitsAttention, WidthAttrAttention, pad_mask,
                              shufflenet_v2, tokens)

import prunekit as pk
from prunekit.graph import trace, units_of
from prunekit.graph.sizes import Equation, Size, evaluate, solve

torch.set_num_threads(1)


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check(model, x, variants=(), structure="heads", sparsity=0.5, **kw):
    """Prune and compact on ``x``; the small model equals the masked one on ``x`` and every variant input."""
    torch.manual_seed(0)
    model.eval()
    pk.prune(model, sparsity, structure=structure, example_inputs=x, **kw)
    small = pk.compact(model, x)
    assert params(small) < params(model)
    with torch.no_grad():
        for inputs in (x, *variants):
            args = inputs if isinstance(inputs, tuple) else (inputs,)
            torch.testing.assert_close(small(*args), model(*args), atol=1e-5, rtol=1e-5)
    return small


ENCODER_INPUTS = (tokens(2, 6), [tokens(3, 6), tokens(2, 9), (tokens(2, 6), pad_mask(2, 6)),
                                 (tokens(3, 9), pad_mask(3, 9))])


# 3. attention whose output width is a stored attribute ------------------------------------------------
@pytest.mark.parametrize("attn, heads, width", [
    (WidthAttrAttention, "num_heads", "attn_dim"),             # timm: reshape(B, N, 3, H, hd) ... (B, N, attn_dim)
    (HeadFirstAttention, "num_attention_heads", "all_head_size"),  # view(B, N, H, 3·hd).chunk(3)
    (InnerDimAttention, "heads", "inner_dim"),                 # separate q/k/v, heads * dim_head
])
@pytest.mark.parametrize("structure", ["heads", "channels"])
def test_attention_sized_by_attributes(attn, heads, width, structure):
    x, variants = ENCODER_INPUTS
    small = check(Encoder(attn), x, variants, structure=structure)
    for a in small.attns:
        out = a.proj if hasattr(a, "proj") else a.out if hasattr(a, "out") else a.to_out
        assert getattr(a, width) == out.in_features == getattr(a, heads) * (out.in_features // getattr(a, heads))
    if structure == "heads":
        assert sum(getattr(a, heads) for a in small.attns) == 4


def test_width_read_from_the_input_refuses_head_compaction_by_name():
    """timm's ``reshape(B, N, C)`` with C from the block's input: heads can be masked, not removed; channels can."""
    x, variants = ENCODER_INPUTS
    model = Encoder(CaiTStyleAttention)
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    with pytest.raises(pk.CompactionError, match=r"'reshape' in layer 'attns.\d' sizes dimension 2 with another "
                                                 r"tensor's shape \(32, 32 after compaction\).*leaves (8|16|24) "):
        pk.compact(model, x)
    small = check(Encoder(CaiTStyleAttention), x, variants, structure="channels")
    assert all(a.qkv.out_features == 96 for a in small.attns) and small.mlps[0][0].out_features < 48


def test_attribute_without_an_integer_value_is_named():
    model, x = Encoder(UnitsAttention), tokens(2, 6)
    pk.prune(model, 0.25, structure="heads", scope="layer", example_inputs=x)
    with pytest.raises(pk.CompactionError, match=r"'reshape' in layer 'attns.0'.*'attns.0.blocks'.*integer"):
        pk.compact(model, x)


def test_attributes_that_cannot_be_told_apart_are_named():
    model, x = Encoder(TwoAttrWidth), tokens(2, 6)
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    with pytest.raises(pk.CompactionError, match=r"'attns.\d.cols', 'attns.\d.rows'.*cannot tell"):
        pk.compact(model, x)


# 4. per-head tensors that are not weights ---------------------------------------------------------
@pytest.mark.parametrize("mlp", [False, True])
def test_swin_relative_position_bias_follows_its_heads(mlp):
    """Swin v1's table indexed by a buffer and Swin v2's bias MLP lose the columns of pruned heads."""
    img = torch.randn(2, 3, 16, 16)
    small = check(SwinStage(mlp), img, [torch.randn(1, 3, 16, 16), torch.randn(2, 3, 24, 24)])
    for a in small.attns:
        columns = a.cpb_mlp[2].out_features if mlp else a.relative_position_bias_table.shape[1]
        assert columns == a.num_heads == a.qkv.out_features // 24
    assert sum(a.num_heads for a in small.attns) == 4


@pytest.mark.parametrize("structure", ["heads", "channels"])
def test_talking_heads_mix_whole_heads(structure):
    """1×1 conv (logits) and Linear (weights) over the head axis keep one row and column per kept head."""
    x, variants = ENCODER_INPUTS
    small = check(Encoder(TalkingHeadsAttention), x, variants, structure=structure)
    for a in small.attns:
        assert a.proj_l.in_channels == a.proj_w.out_features == a.num_heads == a.qkv.out_features // 24
    if structure == "heads":
        assert sum(a.num_heads for a in small.attns) == 4


def test_t5_position_bias_shared_across_layers_prunes_their_heads_together():
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 5:] = True
    other = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(1))
    small = check(T5Like(), ids, [other, (ids, pad)])
    heads = {a.n_heads for a in small.layers}
    assert heads == {small.relative_attention_bias.embedding_dim} and max(heads) < 4


def test_untraced_per_head_bias_locks_the_heads():
    """A constant bias that differs per head cannot shrink with them: those heads stay."""
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn, self.head = BiasedSDPA(), torch.nn.Linear(32, 3)
            self.register_buffer("bias", torch.randn(1, 4, 6, 6))

        def forward(self, x):
            return self.head(self.attn(x, self.bias))

    with pytest.raises(pk.NoPrunableLayersError, match=r"'scaled_dot_product_attention' in layer 'attn': attn_mask"):
        pk.prune(Fixed(), 0.5, structure="heads", example_inputs=torch.randn(2, 6, 32))


def test_transformers_t5_heads():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2,
                                num_heads=4, relative_attention_num_buckets=8, use_cache=False)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(cfg).eval()
    ids, dec = torch.randint(0, 64, (2, 7)), torch.randint(0, 64, (2, 5))
    units, locked = units_of(trace(model, (ids, None, dec)))
    free = {k[0] for u in units if u.kind == "heads" and u.root not in locked for k, _ in u.positions}
    assert "decoder.block.1.layer.1.EncDecAttention.q" in free  # its bias is torch.zeros(1, self.n_heads, ...)
    pk.prune(model, 0.5, structure="heads", example_inputs=(ids, None, dec))
    small = pk.compact(model, (ids, None, dec))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    ids2, dec2 = torch.randint(0, 64, (3, 9)), torch.randint(0, 64, (3, 4))
    with torch.no_grad():
        for args in ((ids, None, dec), (ids2, mask, dec2)):
            torch.testing.assert_close(small(args[0], attention_mask=args[1], decoder_input_ids=args[2]).logits,
                                       model(args[0], attention_mask=args[1], decoder_input_ids=args[2]).logits,
                                       atol=1e-5, rtol=1e-5)
    encoder = {b.layer[0].SelfAttention.n_heads for b in small.encoder.block}
    assert len(encoder) == 1 and max(encoder) < 4  # one shared bias: the layers keep the same heads


# 5. shape ops and splits by attribute ---------------------------------------------------------------
IMAGES = (torch.randn(2, 3, 8, 8), [torch.randn(3, 3, 8, 8), torch.randn(2, 3, 11, 13)])


def test_split_by_attribute_updates_it():
    small = check(SplitByAttr(), *IMAGES, structure="channels")
    assert small.chs == small.conv.out_channels == 2 * small.out.in_channels < 16


def test_view_as_reshape_as_expand_as_follow_their_argument():
    small = check(ShapeAs(), *IMAGES, structure="channels")
    assert small.conv.out_channels < 12 and small.mix.out_channels < 8


def test_channel_shuffle_prunes_position_j_of_every_group():
    small = check(PlainShuffle(), *IMAGES, structure="channels")
    assert small.a.out_channels % 3 == 0 and small.a.out_channels < 12


def test_shufflenet_v2_units():
    small = check(shufflenet_v2(), *IMAGES, structure="channels")
    assert small[2].branch[0].out_channels < 8


def test_shuffle_between_grouped_convs_keeps_their_channels():
    """Position j of g1's groups lands in one group of g2: the shuffled channels stay, the rest prune."""
    small = check(ChannelShuffle(), *IMAGES, structure="channels")
    assert small.g1.out_channels == 16 and small.stem.out_channels < 16


# 8. refusals name the op, the layer and what disagreed -------------------------------------------------
def test_a_forward_that_fails_after_compaction_is_located():
    model, x = ChecksWidth(), torch.randn(2, 3, 8, 8)
    pk.prune(model, 0.5, structure="channels", example_inputs=x)
    with pytest.raises(pk.CompactionError, match=r"in layer 'ChecksWidth' \(ValueError: expected 8 channels\)"):
        pk.compact(model, x)


# properties -------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(value=st.integers(1, 64), mul=st.integers(1, 8), div=st.integers(1, 4), add=st.integers(0, 3),
       new=st.integers(1, 64))
def test_an_attribute_is_solved_back_from_the_size_it_gives(value, mul, div, add, new):
    """``(self.n * mul + add) // div`` sizing a dim: the solved n reproduces any reachable new size."""
    n = Size(value, ("attr", "m.n"))
    size = (n * mul + add) // div
    target = (new * mul + add) // div
    eq = Equation(size.expr, torch.arange(1), target, "view", "m", 1)
    solved = solve([eq], lambda e: True, {"m.n": value})
    assert evaluate(size.expr, {"m.n": solved.get("m.n", value)}) == target


@settings(max_examples=6, deadline=None)
@given(heads=st.sampled_from([2, 3, 4, 6]), head_dim=st.sampled_from([4, 8]), sparsity=st.sampled_from([0.25, 0.5]))
def test_any_attribute_sized_attention_compacts(heads, head_dim, sparsity):
    x, variants = ENCODER_INPUTS
    model = Encoder(lambda: WidthAttrAttention(32, heads, head_dim))
    small = check(model, x, variants[:2] + variants[3:], sparsity=sparsity)
    kept = [a.num_heads for a in small.attns]
    assert sum(kept) == 2 * heads - round(sparsity * 2 * heads)
    assert all(a.attn_dim == k * head_dim == a.proj.in_features for a, k in zip(small.attns, kept))
