"""`transformers` models built from small configs (never downloaded) and the checks that compare two of them.

Shared by tests/test_hf_models.py and bench/architectures.py. Each architecture gives a builder, its
example inputs, and the calls a user makes: another batch size, another length, a padding mask and,
for decoders, one KV-cache step after a prompt.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

V = 64  # vocabulary of every text model


# name: (config class, model class, config fields) in transformers
SPECS: dict[str, tuple[str, str, dict]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
        max_position_embeddings=64, tie_word_embeddings=False)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64, tie_word_embeddings=True)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, max_position_embeddings=64, sliding_window=4)),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_layer=2, n_head=4, n_embd=32, n_positions=64)),
    "bert": ("BertConfig", "BertModel", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)),
    "bart": ("BartConfig", "BartForConditionalGeneration", dict(
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64, decoder_start_token_id=2,
        forced_eos_token_id=None)),
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(
        d_model=32, d_kv=8, d_ff=48, num_layers=1, num_decoder_layers=1, num_heads=4, eos_token_id=1,
        decoder_start_token_id=0)),
    "vit": ("ViTConfig", "ViTModel", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, image_size=16, patch_size=4)),
    "whisper": ("WhisperConfig", "WhisperForConditionalGeneration", dict(
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=48, decoder_ffn_dim=48, num_mel_bins=8, max_source_positions=8, max_target_positions=32,
        decoder_start_token_id=1, suppress_tokens=None, begin_suppress_tokens=None)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, max_position_embeddings=64)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64)),
    "distilbert": ("DistilBertConfig", "DistilBertModel", dict(
        dim=32, hidden_dim=48, n_layers=2, n_heads=4, max_position_embeddings=64)),
    "roberta": ("RobertaConfig", "RobertaModel", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, max_position_embeddings=64,
        pad_token_id=1)),
}
TOKENS = dict(vocab_size=V, pad_token_id=0, bos_token_id=1, eos_token_id=2)  # in range of the small vocabulary


def build(name: str, attn: str = "sdpa") -> nn.Module:
    """A freshly initialised ``name`` model (random weights from torch's global generator)."""
    import transformers

    config_cls, model_cls, fields = SPECS[name]
    tokens = {} if name == "vit" else TOKENS
    config = getattr(transformers, config_cls)(**{**tokens, **fields})
    return getattr(transformers, model_cls)._from_config(config, attn_implementation=attn)


BUILDERS: dict[str, Callable[..., nn.Module]] = {name: functools.partial(build, name) for name in SPECS}
DECODERS = {"llama", "qwen2", "mistral", "gpt2", "gemma", "phi3", "gpt_neox"}
SEQ2SEQ = {"bart", "t5", "whisper"}


def ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def padding(batch: int, length: int) -> torch.Tensor:
    """An attention mask whose first row has its first three positions padded (left padding)."""
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, :3] = 0
    return mask


def example(name: str, batch: int = 2, length: int = 6) -> tuple:
    """The positional example inputs pk.prune / pk.compact trace ``name`` on."""
    if name == "vit":
        return (torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(length)),)
    if name == "whisper":  # the encoder needs 2·max_source_positions frames
        return (torch.randn(batch, 8, 16, generator=torch.Generator().manual_seed(length)), None, ids(batch, length))
    if name in SEQ2SEQ:
        return (ids(batch, length), None, ids(batch, length, 1))
    return (ids(batch, length),)


def calls(name: str) -> dict[str, Callable[[nn.Module], Any]]:
    """The calls to compare two versions of ``name`` on: each maps a model to its output tensor."""
    def plain(args):
        return lambda m: _main(m(*args))

    out = {"example": plain(example(name)), "batch 3": plain(example(name, 3)), "length 9": plain(example(name, 3, 9))}
    if name == "vit":
        out["resolution 24"] = lambda m: _main(m(torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(1)),
                                                   interpolate_pos_encoding=True))
        return out
    if name == "whisper":
        feats, _, dec = example(name, 3, 9)
        out["padding mask"] = lambda m: _main(m(feats, decoder_input_ids=dec, decoder_attention_mask=padding(3, 9)))
    elif name in SEQ2SEQ:
        src, _, dec = example(name, 3, 9)
        out["padding mask"] = lambda m: _main(m(src, attention_mask=padding(3, 9), decoder_input_ids=dec))
    else:
        x = ids(3, 9)
        out["padding mask"] = lambda m: _main(m(x, attention_mask=padding(3, 9)))
    if name in DECODERS:
        out["kv-cache step"] = _decoder_step
    elif name in SEQ2SEQ:
        out["kv-cache step"] = lambda m: _seq2seq_step(m, name)
    return out


def _decoder_step(m: nn.Module) -> torch.Tensor:
    """A padded prompt, then one new token through the cache."""
    x, mask = ids(3, 9), padding(3, 9)
    past = m(x, attention_mask=mask, use_cache=True).past_key_values
    nxt = ids(3, 1, 7)
    return m(nxt, attention_mask=torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], 1), past_key_values=past,
             use_cache=True).logits


def _seq2seq_step(m: nn.Module, name: str) -> torch.Tensor:
    src, _, dec = example(name, 3, 9)
    kw = {"attention_mask": padding(3, 9)} if name != "whisper" else {}
    first = m(src, decoder_input_ids=dec, use_cache=True, **kw)
    return m(src, decoder_input_ids=ids(3, 1, 7), past_key_values=first.past_key_values, use_cache=True, **kw).logits


def _main(out: Any) -> torch.Tensor:
    """The tensor a user reads: logits for LMs, the last hidden state for encoders."""
    for key in ("logits", "last_hidden_state"):
        if getattr(out, key, None) is not None:
            return getattr(out, key)
    raise TypeError(f"no logits or last_hidden_state in {type(out).__name__}")


@torch.no_grad()
def differences(a: nn.Module, b: nn.Module, name: str) -> dict[str, float]:
    """Largest absolute output difference between models ``a`` and ``b`` on each of ``name``'s calls."""
    a.eval(), b.eval()
    res = {}
    for label, call in calls(name).items():
        x, y = call(a), call(b)
        if x.shape != y.shape:
            raise AssertionError(f"{label}: shape {tuple(y.shape)} != {tuple(x.shape)}")
        res[label] = float((x - y).abs().max())
    return res
