"""Hugging Face ``transformers`` models after compaction: config fields that tell the new sizes, save_pretrained.

A compacted model's layers are smaller than its ``config`` says. :func:`sync_config` measures each
layer (heads from the query projection, MLP width from its first projection) and writes the sizes
into the config fields the architecture reads, when every layer agrees. :func:`save_pretrained` writes a
folder ``from_pretrained`` loads as is, or refuses, naming the field, when layers differ (a config
holds one size for all layers) or when a fresh model built from the new config would not match.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ExportError, StorageFormatError
from ..masks import masked_parameters

_ENC, _DEC = r"(^|\.)encoder\.", r"(^|\.)decoder\."
BASE_ATTR = "_prunekit_base"  # the transformers class and config a compacted model was built from


def _rows(module: nn.Module) -> int | None:
    """Output width of a Linear (or of transformers' Conv1D, which keeps its weight as (in, out))."""
    if isinstance(module, nn.Linear):
        return module.out_features
    nf = getattr(module, "nf", None)
    return nf if isinstance(nf, int) else None


def _head_dim(attn: nn.Module) -> int | None:
    for attr in ("head_dim", "attention_head_size", "key_value_proj_dim", "head_size"):
        value = getattr(attn, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _projection(attn: nn.Module, names: tuple[str, ...], parts: int = 1) -> int | None:
    """Heads fed by the first of ``names`` that ``attn`` has (a fused q/k/v projection holds ``parts`` of them)."""
    hd = _head_dim(attn)
    for n in names:
        proj = getattr(attn, n, None)
        if proj is not None and hd and _rows(proj):
            return _rows(proj) // (parts * hd)
    return None


def _heads(attn: nn.Module) -> int | None:
    return _projection(attn, ("q_proj", "query", "q", "q_lin")) or _projection(attn, ("c_attn", "query_key_value"), 3)


def _halves(module: nn.Module) -> int | None:
    """Width of a fused gate+up projection (Phi-3's gate_up_proj holds both halves)."""
    rows = _rows(module)
    return rows // 2 if rows else None


def _kv_heads(attn: nn.Module) -> int | None:
    return _projection(attn, ("k_proj",))


# (config field, which modules hold it, how one module tells its value); a field counts only where the
# architecture's config has it (BART's encoder_attention_heads, GPT-2's n_head...)
FIELDS: tuple[tuple[str, str, Callable[[nn.Module], int | None]], ...] = (
    ("num_attention_heads", r"(^|\.)(self_attn|attention(\.self|\.attention)?)$", _heads),
    ("num_key_value_heads", r"(^|\.)self_attn$", _kv_heads),
    ("intermediate_size", r"(mlp\.(gate_proj|up_proj|fc1|dense_h_to_4h)|intermediate\.dense)$", _rows),
    ("intermediate_size", r"mlp\.gate_up_proj$", _halves),
    ("n_head", r"\.attn$", _heads),
    ("n_inner", r"\.mlp\.c_fc$", _rows),
    ("encoder_attention_heads", _ENC + r".*\.self_attn$", _heads),
    ("decoder_attention_heads", _DEC + r".*\.(self_attn|encoder_attn)$", _heads),
    ("encoder_ffn_dim", _ENC + r".*\.fc1$", _rows),
    ("decoder_ffn_dim", _DEC + r".*\.fc1$", _rows),
    ("num_heads", r"\.(SelfAttention|EncDecAttention)$", _heads),
    ("d_ff", r"\.DenseReluDense\.wi(_0|_1)?$", _rows),
    ("n_heads", r"\.attention$", _heads),
    ("hidden_dim", r"\.ffn\.lin1$", _rows),
)


HEAD_FIELDS = {f for f, _, measure in FIELDS if measure in (_heads, _kv_heads)}


def is_transformers(model: nn.Module) -> bool:
    """Whether ``model`` is a ``transformers`` model (it has a config that can write config.json)."""
    config = getattr(model, "config", None)
    return callable(getattr(config, "to_dict", None)) and callable(getattr(model, "save_pretrained", None))


def layer_sizes(model: nn.Module) -> dict[str, list[int]]:
    """Per config field, the size each layer has now, in module order."""
    present = model.config.to_dict()
    sizes: dict[str, list[int]] = {}
    for field, pattern, measure in FIELDS:
        if field not in present:
            continue
        values = [v for name, m in model.named_modules() if re.search(pattern, name) and (v := measure(m))]
        if values:
            sizes.setdefault(field, []).extend(values)
    return sizes


def resized(model: nn.Module) -> None:
    """After compaction resized ``model``: remember the architecture it was built as, then sync its config."""
    if is_transformers(model):
        config = json.loads(model.config.to_json_string(use_diff=False))
        setattr(model, BASE_ATTR, {"class": type(model).__name__, "config": config,
                                   "attn_implementation": getattr(model.config, "_attn_implementation", None)})
        sync_config(model)


def base_model(spec: dict) -> nn.Module:
    """A fresh model of the architecture :func:`resized` remembered (``pk.load_compact`` without a factory)."""
    try:
        import transformers
    except ImportError:
        raise StorageFormatError("this compact model is a transformers model: install transformers, or pass "
                                 "load_compact a factory that builds the original architecture") from None
    cls = getattr(transformers, spec["class"], None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module) or not hasattr(cls, "config_class"):
        raise StorageFormatError(f"transformers {transformers.__version__} has no model class {spec['class']!r}; "
                                 "pass load_compact a factory that builds the original architecture")
    try:
        config = cls.config_class.from_dict(spec["config"])
        return cls._from_config(config, attn_implementation=spec.get("attn_implementation"))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise StorageFormatError(f"the saved {spec['class']} config does not build a model ({err}); pass "
                                 "load_compact a factory that builds the original architecture") from None


def sync_config(model: nn.Module) -> dict[str, list[int]]:
    """Write the sizes every layer agrees on into ``model.config``; return the fields whose layers differ."""
    if not is_transformers(model):
        return {}
    uneven, heads_changed = {}, False
    for field, values in layer_sizes(model).items():
        if len(set(values)) == 1:
            heads_changed |= field in HEAD_FIELDS and getattr(model.config, field) != values[0]
            setattr(model.config, field, values[0])
        else:
            uneven[field] = values
    dims = {d for m in model.modules() if _heads(m) and (d := _head_dim(m))}
    if heads_changed and len(dims) == 1 and "head_dim" not in model.config.to_dict():
        model.config.head_dim = dims.pop()  # heads keep their size: hidden size / heads no longer gives it
    return uneven


def save_pretrained(model: nn.Module, path: str | Path) -> Path:
    """Save a compacted ``transformers`` model as a folder ``AutoModel….from_pretrained(path)`` loads.

    Its ``config.json`` carries the new sizes. Refused with :class:`ExportError` when layers kept
    different sizes (prune with ``scope="layer"`` for equal ones, or use ``pk.save_compact``).
    """
    if not is_transformers(model):
        raise ExportError(f"save_pretrained needs a transformers model (with .config); {type(model).__name__} is "
                          "not one: use pk.save_compact(model, path) and pk.load_compact(path, factory)")
    masked = next(masked_parameters(model), None)
    if masked is not None:
        raise ExportError(f"{masked[0]} still carries a pruning mask, which from_pretrained cannot load: save the "
                          "model pk.compact returns (smaller layers, no masks), or call pk.unprune(model) first")
    uneven = sync_config(model)
    if uneven:
        field, values = next(iter(uneven.items()))
        raise ExportError(
            f"{type(model.config).__name__} holds one {field} for all layers, but the compacted layers keep "
            f"{values}; prune with scope='layer' (the same fraction in every layer) to save a from_pretrained "
            "folder, or save with pk.save_compact(model, path) and load with pk.load_compact(path)"
        )
    _check_config(model)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExportError(f"{path} is a file; save_pretrained writes a folder, so pass a folder path")
    model.save_pretrained(str(path))
    return path


def _check_config(model: nn.Module) -> None:
    """Refuse unless ``model.config``, validated as from_pretrained would, builds a model of ``model``'s shapes."""
    config = model.config
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = _wrong_shapes(model, copy.deepcopy(config.to_dict()), have)
    if not wrong:
        return
    k, want = wrong[0]
    told = ", ".join(f"{f}={getattr(config, f)}" for f in layer_sizes(model)) or "no size field"
    raise ExportError(
        f"{type(config).__name__} cannot describe the compacted {type(model).__name__}: with {told} it builds "
        f"{k} as {want}, but the compacted one is {have[k]} ({len(wrong)} tensors differ; the config "
        "derives that size from others, e.g. head size = hidden size / heads, or has no field for it). "
        "Save with pk.save_compact(model, path) and load with pk.load_compact(path), or exclude those layers "
        "from pruning"
    )


def _wrong_shapes(model: nn.Module, fields: dict, have: dict[str, tuple]) -> list[tuple[str, tuple]]:
    """The tensors whose shape a model built from the (validated) config ``fields`` gets wrong, with that shape."""
    try:
        fresh = type(model.config).from_dict(fields)
        with torch.device("meta"):
            reference = type(model)._from_config(fresh)
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        raise ExportError(f"{type(model.config).__name__} cannot describe the compacted sizes ({err}); save with "
                          "pk.save_compact(model, path) and load with pk.load_compact(path)") from None
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    return [(k, want[k]) for k in have if want.get(k, have[k]) != have[k]]
