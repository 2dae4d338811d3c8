"""Compaction equivalence: the smaller model computes what the masked one did, with the predicted size."""
from __future__ import annotations

import pytest
import torch
from test_graph_models import (cifar_resnet, LeNet5, bottleneck_resnet, densenet_block, mlp, mobilenet_block,
                               resnext_block, transformer, vgg16_bn, vit_block)

import prunekit as pk
from prunekit.masks import Masks


def check_equivalent(model, x, sparsity=0.4, structure="channels", **kw):
    """Prune, compact, and assert equal outputs (atol 1e-5), parameters and MACs as summary predicts."""
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a wrong slice would show
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    dense = pk.summary(model, x)
    masks = pk.prune(model, sparsity, structure=structure, example_inputs=x, **kw)
    assert len(masks) > 0
    masked = pk.summary(model, x)
    removed = sum(int((~m).sum()) for m in Masks.from_model(model).values())
    small = pk.compact(model, x)
    got = pk.summary(small, x)
    with torch.no_grad():
        ref, out = model(x), small(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert got.params == dense.params - removed < dense.params
    assert got.macs == masked.nonzero_macs
    assert not any(n.endswith("_mask") for n, _ in small.named_buffers())
    return small, dense, got


@pytest.mark.parametrize("name, factory, shape", [
    ("mlp", mlp, (4, 64)),
    ("lenet5", LeNet5, (2, 1, 28, 28)),
    ("resnet20", lambda: cifar_resnet(20), (2, 3, 32, 32)),
    ("resnet56", lambda: cifar_resnet(56), (1, 3, 32, 32)),
    ("vgg16_bn", vgg16_bn, (1, 3, 32, 32)),
    ("bottleneck", bottleneck_resnet, (2, 3, 16, 16)),
    ("mobilenetv2_block", mobilenet_block, (2, 3, 16, 16)),
    ("densenet_block", densenet_block, (2, 3, 16, 16)),
])
def test_channel_compaction_equivalence(name, factory, shape):
    small, dense, got = check_equivalent(factory(), torch.randn(shape))
    assert got.macs < dense.macs


def test_resnet_option_a_prunes_the_residual_stream():
    """Zero-padded shortcuts are handled: residual channels that meet real channels are prunable."""
    model = cifar_resnet(20)
    small, _, _ = check_equivalent(model, torch.randn(2, 3, 32, 32), sparsity=0.5)
    assert small.conv1.out_channels < 16  # the stem is coupled through every option-A pad
    assert small.layer1[0].conv1.out_channels < 16


def test_depthwise_conv_shrinks_with_its_expansion():
    small, _, _ = check_equivalent(mobilenet_block(), torch.randn(2, 3, 16, 16), sparsity=0.5)
    dw = small[4].conv[3]
    assert dw.groups == dw.in_channels == dw.out_channels == small[4].conv[0].out_channels < 144


def test_grouped_convs_lose_the_same_positions_in_every_group():
    small, _, _ = check_equivalent(resnext_block(), torch.randn(2, 3, 8, 8), sparsity=0.5)
    for conv in (small[3].body[3], small[4].body[3], small[5]):
        assert conv.in_channels % conv.groups == 0 and conv.out_channels % conv.groups == 0
        assert conv.weight.shape == (conv.out_channels, conv.in_channels // conv.groups, 3, 3)
    assert small[3].body[3].groups == 4 and small[3].body[3].in_channels < 32
    assert small[4].body[3].out_channels < 64


def test_densenet_concat_slices_consumers():
    small, _, _ = check_equivalent(densenet_block(), torch.randn(2, 3, 16, 16), sparsity=0.5)
    assert small[6].in_channels < 40 and small[6].in_channels == small[4].num_features


@pytest.mark.parametrize("handwritten", [False, True])
def test_transformer_heads_and_mlp_width(handwritten):
    x = torch.randn(2, 5, 16)
    model = transformer(handwritten)
    small, _, _ = check_equivalent(model, x, sparsity=0.5, structure="heads")
    attn = small[1].attn
    heads = attn.num_heads if not handwritten else attn.n_head
    assert heads < 4
    small2, _, _ = check_equivalent(small, x, sparsity=0.5, structure="channels")
    assert small2[1].mlp[0].out_features < 64
    assert small2[1].ln1.normalized_shape == (32,)  # the residual stream (LayerNorm-mixed) is kept


def test_gpt2_from_config_heads_and_mlp():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=100, n_positions=16, use_cache=False)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 100, (2, 8))
    ref = model(ids).logits
    pk.prune(model, 0.5, structure="heads", example_inputs=ids)
    pk.prune(model, 0.5, structure="channels", example_inputs=ids)
    small = pk.compact(model, ids)
    torch.testing.assert_close(small(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)
    masked, compacted = pk.summary(model, ids), pk.summary(small, ids)
    conv1d = [l for l in compacted.layers if l.kind == "Conv1D"]
    assert len(conv1d) == 8 and all(l.macs > 0 for l in conv1d)  # c_attn, c_proj, c_fc, mlp.c_proj per block
    assert compacted.macs == masked.nonzero_macs < masked.macs
    attn = [blk.attn for blk in small.transformer.h]
    assert sum(a.split_size for a in attn) == 8 * 2 * 4 // 2 * 2 // 2 and all(a.split_size % 8 == 0 for a in attn)
    assert sum(a.num_heads for a in attn) == 4
    assert sum(b.mlp.c_fc.nf for b in small.transformer.h) == 128
    assert ref.shape == small(ids).logits.shape


def test_fused_qkv_attention_loses_whole_heads():
    small, _, _ = check_equivalent(vit_block(), torch.randn(2, 6, 16), sparsity=0.5, structure="heads")
    attn = small[1]
    assert attn.num_heads == 2 and attn.qkv.out_features == 3 * 2 * 8 and attn.proj.in_features == 16


class Unflatten(torch.nn.Module):
    """A linear layer reshaped into feature maps: its units become whole channels of the conv."""

    def __init__(self):
        super().__init__()
        self.fc, self.conv, self.head = torch.nn.Linear(8, 36), torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.Linear(54, 3)

    def forward(self, x):
        y = self.conv(torch.relu(self.fc(x)).view(x.size(0), -1, 3, 3))
        return self.head(y.flatten(1))


def test_linear_unflattened_into_conv_channels():
    small, _, _ = check_equivalent(Unflatten(), torch.randn(2, 8), sparsity=0.5)
    assert small.fc.out_features == 9 * small.conv.in_channels and small.conv.in_channels < 4


@pytest.mark.parametrize("name, shape", [("mlp", (2, 1, 28, 28)), ("lenet5", (2, 1, 28, 28)),
                                         ("resnet32", (1, 3, 32, 32)), ("vgg11", (1, 3, 32, 32))])
def test_zoo_models_compact(name, shape):
    """More of the zoo's definitions trace and compact."""
    model, x = pk.models.create(name).eval(), torch.randn(shape)
    pk.prune(model, 0.5, structure="channels", example_inputs=x)
    small = pk.compact(model, x)  # compact() itself checks outputs against the masked model
    assert pk.summary(small, x).macs == pk.summary(model, x).nonzero_macs


class Mixed(torch.nn.Module):
    """Stack, comparisons and *_like constructors on channel tensors."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = torch.nn.Linear(4, 8), torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

    def forward(self, x):
        h = torch.stack([self.a(x), self.b(x)], 0).sum(0)
        h = torch.where(h > 0, h, torch.zeros_like(h))
        return self.out(h)


def test_stack_where_and_like_ops():
    small, _, _ = check_equivalent(Mixed(), torch.randn(3, 4), sparsity=0.5)
    assert small.a.out_features == small.b.out_features == small.out.in_features == 4


def test_torch_transformer_encoder_layer():
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
    model = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = torch.randn(2, 5, 32)
    small, _, _ = check_equivalent(model, x, sparsity=0.5, structure="heads")
    assert [m.self_attn.num_heads for m in small.layers] != [4, 4]
    small, _, _ = check_equivalent(small, x, sparsity=0.5, structure="channels")
    assert sum(m.linear1.out_features for m in small.layers) == 64


class GLU(torch.nn.Module):
    """``a, b = fc(x).chunk(2)``: channel j of both halves is one unit."""

    def __init__(self):
        super().__init__()
        self.fc, self.out = torch.nn.Linear(4, 12), torch.nn.Linear(6, 2)

    def forward(self, x):
        a, b = self.fc(x).chunk(2, dim=-1)
        return self.out(a * torch.sigmoid(b))


def test_chunk_couples_the_halves():
    small, _, _ = check_equivalent(GLU(), torch.randn(3, 4), sparsity=0.5)
    assert small.fc.out_features == 2 * small.out.in_features < 12


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose_decoder(groups):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                torch.nn.ConvTranspose2d(8, 12, 2, stride=2, groups=groups), torch.nn.BatchNorm2d(12),
                                torch.nn.ReLU(), torch.nn.Conv2d(12, 3, 1))
    small, _, _ = check_equivalent(model, torch.randn(2, 3, 8, 8), sparsity=0.5)
    up = small[2]
    assert up.in_channels == small[0].out_channels < 8 and up.out_channels == small[3].num_features < 12
    assert up.groups == groups and up.weight.shape[:2] == (up.in_channels, up.out_channels // groups)


def test_group_norm_loses_whole_groups():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.GroupNorm(4, 16), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 8, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 2))
    small, _, _ = check_equivalent(model, torch.randn(2, 3, 8, 8), sparsity=0.5, scope="layer")
    gn = small[1]
    assert gn.num_channels == small[0].out_channels == 4 * gn.num_groups and gn.num_groups == 2
