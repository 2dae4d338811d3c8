"""Channel and head pruning of `transformers` models built from small configs: compacted equals masked.

Each model is compared on its example input, another batch size, another length (or resolution), a
padding mask and, for decoders, one KV-cache step (see tests/hf_models.py).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunekit as pk

pytest.importorskip("transformers")
import hf_models as H  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def prune_and_compact(name: str, structure: str, attn: str = "sdpa", sparsity: float = 0.5):
    torch.manual_seed(0)
    model = H.BUILDERS[name](attn).eval()
    x = H.example(name)
    pk.prune(model, sparsity, structure=structure, example_inputs=x)
    return model, pk.compact(model, x)


def assert_same(model: nn.Module, small: nn.Module, name: str) -> None:
    worst = H.differences(model, small, name)
    assert max(worst.values()) < 1e-5, worst
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


class GQA(nn.Module):
    """Grouped-query attention written by hand: 4 query heads share 2 key/value heads, no repeat_kv."""

    def __init__(self, d: int = 16, heads: int = 4, kv: int = 2):
        super().__init__()
        self.hd = d // heads
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, kv * self.hd), nn.Linear(d, kv * self.hd)
        self.o, self.up, self.down = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, -1, self.hd).transpose(1, 2) for p in (self.q, self.k, self.v))
        x = x + self.o(self.attend(q, k, v).transpose(1, 2).reshape(b, t, -1))
        return x + self.down(F.relu(self.up(x)))

    def attend(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


class RepeatedKV(GQA):
    """The same attention written out: key/value heads repeated with repeat_interleave, softmax by hand."""

    def attend(self, q, k, v):
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), torch.repeat_interleave(v, groups, 1)
        return (q @ k.transpose(-1, -2) / self.hd ** 0.5).softmax(-1) @ v


@pytest.mark.parametrize("factory", [GQA, RepeatedKV])
def test_hand_written_gqa_loses_whole_kv_groups(factory):
    torch.manual_seed(0)
    model, x = factory().eval(), torch.randn(2, 5, 16)
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    small = pk.compact(model, x)
    assert small.k.out_features == 4 and small.q.out_features == 8  # one KV group: 1 kv head + its 2 query heads
    for shape in ((2, 5, 16), (3, 9, 16)):
        y = torch.randn(shape)
        torch.testing.assert_close(small(y), model(y), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_gqa_heads_go_by_kv_group(name, attn):
    model, small = prune_and_compact(name, "heads", attn)
    assert_same(model, small, name)
    for layer in small.model.layers:
        a = layer.self_attn
        heads, kv = a.q_proj.out_features // a.head_dim, a.k_proj.out_features // a.head_dim
        assert heads == kv * a.num_key_value_groups and a.o_proj.in_features == heads * a.head_dim
    assert sum(layer.self_attn.k_proj.out_features for layer in small.model.layers) < 2 * 2 * 8
    a = small.model.layers[0].self_attn  # global scope left the two layers equal here: the config says so
    assert small.config.num_attention_heads * a.head_dim == a.q_proj.out_features
    assert small.config.num_key_value_heads * a.head_dim == a.k_proj.out_features
    assert model.config.num_attention_heads == (8 if name == "llama" else 4)  # the masked model's is untouched


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_gqa_model_mlp_channels(name):
    model, small = prune_and_compact(name, "channels")
    assert_same(model, small, name)
    assert all(layer.mlp.gate_proj.out_features == layer.mlp.down_proj.in_features for layer in small.model.layers)
    assert sum(layer.mlp.up_proj.out_features for layer in small.model.layers) < 2 * 48


@pytest.mark.parametrize("name", ["gpt2", "qwen2", "bart", "whisper", "t5"])
def test_tied_embeddings_saved_once_and_tied_again(name, tmp_path):
    model, small = prune_and_compact(name, "channels")
    pk.save_compact(small, tmp_path / name)
    torch.manual_seed(1)  # the new model's own random weights must all be overwritten
    loaded = pk.load_compact(tmp_path / name).eval()  # a transformers model needs no factory
    assert type(loaded) is type(small)
    out, emb = loaded.get_output_embeddings(), loaded.get_input_embeddings()
    assert out.weight is emb.weight  # the tie is restored, not two copies
    assert list(loaded.state_dict()) == list(small.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), loaded.state_dict().values()))
    for label, diff in H.differences(small, loaded, name).items():
        assert diff == 0.0, label


def _identical(a: nn.Module, b: nn.Module, name: str) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(diff == 0.0 for diff in H.differences(a, b, name).values())


@pytest.mark.parametrize("name,structure,attn", [
    ("llama", "heads", "sdpa"), ("llama", "channels", "eager"), ("qwen2", "heads", "sdpa"),
    ("gpt2", "channels", "sdpa"), ("bart", "channels", "sdpa"), ("t5", "channels", "sdpa"),
    ("bert", "channels", "eager"), ("vit", "heads", "sdpa"), ("distilbert", "channels", "sdpa"),
    ("phi3", "channels", "sdpa"),
])
def test_save_pretrained_loads_with_from_pretrained(name, structure, attn, tmp_path):
    torch.manual_seed(0)
    model, x = H.BUILDERS[name](attn).eval(), H.example(name)
    pk.prune(model, 0.5, structure=structure, example_inputs=x, scope="layer")
    small = pk.compact(model, x)
    pk.save_pretrained(small, tmp_path / name)
    assert small.config._attn_implementation == attn  # saving leaves the model as it was
    loaded = type(small).from_pretrained(tmp_path / name, attn_implementation=attn).eval()
    _identical(small, loaded, name)
    if name == "llama":
        cfg = loaded.config
        layer = loaded.model.layers[0]
        assert cfg.num_attention_heads * cfg.head_dim == layer.self_attn.q_proj.out_features
        assert cfg.num_key_value_heads * cfg.head_dim == layer.self_attn.k_proj.out_features
        assert cfg.intermediate_size == layer.mlp.up_proj.out_features
        assert (cfg.num_attention_heads, cfg.intermediate_size) != (8, 48)


@pytest.mark.parametrize("name", ["gpt2", "bart", "bert", "whisper"])
def test_heads_the_config_cannot_express_are_refused_but_save_compact_works(name, tmp_path):
    model, small = prune_and_compact(name, "heads")
    with pytest.raises(pk.ExportError, match="cannot describe the compacted .*pk.save_compact"):
        pk.save_pretrained(small, tmp_path / "hf")
    pk.save_compact(small, tmp_path / "pk")
    _identical(small, pk.load_compact(tmp_path / "pk", H.BUILDERS[name]).eval(), name)


def test_layers_of_different_sizes_are_refused_by_name(tmp_path):
    torch.manual_seed(0)
    model, x = H.BUILDERS["llama"]().eval(), H.example("llama")
    pk.prune(model, structure="channels", example_inputs=x, scope={"model.layers.0.mlp.*": 0.5})
    small = pk.compact(model, x)
    with pytest.raises(pk.ExportError, match=r"one intermediate_size for all layers, but .* keep \[24, 24, 48, 48\]"):
        pk.save_pretrained(small, tmp_path / "hf")
    pk.save_compact(small, tmp_path / "pk")
    _identical(small, pk.load_compact(tmp_path / "pk").eval(), "llama")
    assert pk.load_compact(tmp_path / "pk", H.BUILDERS["llama"]).config.intermediate_size == 48  # uneven: left as built


def test_save_pretrained_needs_a_transformers_model(tmp_path):
    with pytest.raises(pk.ExportError, match="pk.save_compact"):
        pk.save_pretrained(GQA(), tmp_path / "x")


@pytest.mark.parametrize("name,structure", [
    ("llama", "heads"), ("qwen2", "channels"), ("mistral", "heads"), ("gpt2", "heads"), ("bert", "heads"),
    ("bart", "heads"), ("vit", "heads"), ("whisper", "channels"), ("t5", "channels"), ("t5", "heads"),
    ("gemma", "heads"), ("phi3", "heads"), ("gpt_neox", "heads"), ("distilbert", "heads"), ("roberta", "channels"),
])
def test_architectures_compact_equal_or_refuse(name, structure):
    """Equal outputs, or a PruneError (T5's position bias shared by every layer's heads; Phi-3's fused
    q/k/v sliced at fixed offsets) — never a raw torch error or a silently different model."""
    try:
        model, small = prune_and_compact(name, structure)
    except pk.PruneError:
        assert (name, structure) in {("t5", "heads"), ("phi3", "heads")}
        return
    assert_same(model, small, name)



def test_save_pretrained_refuses_a_masked_model(tmp_path):
    torch.manual_seed(0)
    model, x = H.BUILDERS["llama"]().eval(), H.example("llama")
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    with pytest.raises(pk.ExportError, match="still carries a pruning mask.*pk.compact"):
        pk.save_pretrained(model, tmp_path / "hf")


def test_load_compact_rebuilds_the_attention_implementation(tmp_path):
    model, small = prune_and_compact("qwen2", "heads", "eager")
    pk.save_compact(small, tmp_path / "q")
    loaded = pk.load_compact(tmp_path / "q")
    assert loaded.config._attn_implementation == "eager" and loaded.config.num_attention_heads == 2
    _identical(small, loaded.eval(), "qwen2")


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_greedy_generation_with_static_and_dynamic_caches(name):
    """generate() decodes token by token through either KV cache: the compacted model picks the same tokens."""
    model, small = prune_and_compact(name, "heads")
    x = H.ids(2, 5)
    for cache in ("static", "dynamic"):
        kw = {"max_new_tokens": 3, "do_sample": False, "cache_implementation": cache, "pad_token_id": 0}
        assert torch.equal(small.generate(x, **kw), model.generate(x, **kw))
