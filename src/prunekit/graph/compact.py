"""Compaction: rebuild the layers of a channel/head-masked model with fewer channels, for real.

The plan (which indices each tensor keeps, which attributes change, which attention modules get
fewer heads) is plain data, so it can be saved beside the weights and replayed on a fresh model.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import CompactionError, PruneError
from ..inputs import check_forward
from ..masks import Masks, mask_of, unprune
from ..outputs import model_outputs as _outputs
from .rules import PrunedMultiheadAttention
from .blocks import drop_blocks, without_removed
from .core import Graph, units_of
from .sizes import solve
from .locate import divergence, failure
from .fold import constants, consumer_inputs, dead_roots, fold
from .hf import resized
from .trace import trace

PLAN_ATTR = "_prunekit_plan"


def pruned_roots(graph: Graph, units: list | None = None, locked: set[int] | None = None) -> set[int]:
    """Units whose every parameter slice is masked out (and that touch at least one mask)."""
    if units is None or locked is None:
        units, locked = units_of(graph)
    gone = set()
    for u in units:
        if u.root in locked:
            continue
        hits = 0
        for (m, p, d), i in u.positions:
            module = graph.modules[m]
            if p not in module._parameters:
                continue
            mask = mask_of(module, p)
            if mask is None or bool(mask.select(d, i).any()):
                hits = -1
                break
            hits += 1
        if hits > 0:
            gone.add(u.root)
    return gone


def make_plan(graph: Graph, gone: set[int]) -> dict:
    """Kept indices per tensor dimension, attribute updates and rebuilt attention modules."""
    params: dict[str, dict[str, list[int]]] = {}
    for (m, p, d), labels in graph.slots.items():
        keep = [i for i, e in enumerate(labels.tolist()) if graph.find(e) not in gone]
        if len(keep) < len(labels):
            if not keep:
                raise CompactionError(f"compaction would remove every channel of {m}.{p}; prune less")
            params.setdefault(f"{m}.{p}" if m else p, {})[str(d)] = keep
    attrs = {}
    for m, attr, labels in graph.attrs:
        kept = sum(graph.find(int(e)) not in gone for e in labels.tolist())
        if kept != len(labels):
            attrs[f"{m}.{attr}" if m else attr] = kept
    def kept(e: int) -> bool:
        return graph.find(e) not in gone

    for fixed in graph.fixed:
        fixed.check(kept)
    attrs.update(solve(graph.sizes, kept, graph.values))
    mha = {}
    for name, heads in graph.mha.items():
        rows = params.get(f"{name}.in_proj_weight", {}).get("0")
        if rows is not None:
            module = graph.modules[name]
            hd = module.embed_dim // heads if isinstance(module, nn.MultiheadAttention) else module.head_dim
            mha[name] = {"num_heads": len(rows) // (3 * hd), "head_dim": hd}
    return {"params": params, "attrs": attrs, "mha": mha}


def _resolve(model: nn.Module, qname: str) -> tuple[nn.Module, str]:
    mname, _, leaf = qname.rpartition(".")
    return (model.get_submodule(mname) if mname else model), leaf


def _sync(module: nn.Module) -> None:
    """Make a module's size attributes agree with its resized tensors."""
    w = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = w.shape
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
            module.groups = module.in_channels = w.shape[0]
        else:
            module.in_channels = w.shape[1] * module.groups
        module.out_channels = w.shape[0]
    elif isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        module.in_channels, module.out_channels = w.shape[0], w.shape[1] * module.groups
    elif isinstance(module, nn.GroupNorm):
        per_group = module.num_channels // module.num_groups
        module.num_channels = w.shape[0]
        module.num_groups = w.shape[0] // per_group
    elif isinstance(module, nn.Embedding):
        module.num_embeddings, module.embedding_dim = w.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = (w if w is not None else module.running_mean).shape[0]
    elif hasattr(module, "nf") and hasattr(module, "nx") and w is not None and w.dim() == 2:
        module.nx, module.nf = w.shape  # transformers' Conv1D keeps its weight as (in, out)


def _retie(model: nn.Module, done: dict[int, tuple[torch.Tensor, torch.Tensor]], touched: dict[int, nn.Module]
           ) -> None:
    """Every other name of a resized tensor (tied embeddings, shared modules) now holds the resized one."""
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for leaf, t in table.items():
                if t is not None and id(t) in done:
                    table[leaf] = done[id(t)][1]
                    touched[id(module)] = module


def apply_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Resize ``model``'s tensors and attributes in place as ``plan`` says; return it."""
    try:
        return _apply(model, plan)
    except PruneError:
        raise
    except Exception as err:  # a module that refuses its new sizes: named, never a raw error
        raise CompactionError(f"cannot rebuild {type(model).__name__} with fewer channels "
                              f"({type(err).__name__}: {err}); exclude the layers involved") from None


def _apply(model: nn.Module, plan: dict) -> nn.Module:
    drop_blocks(model, plan.get("blocks", []))
    touched, done = {}, {}
    for qname, dims in plan["params"].items():
        module, leaf = _resolve(model, qname)
        t = getattr(module, leaf)
        if id(t) in done:
            continue
        new = t.detach()
        for d, idx in dims.items():
            new = new.index_select(int(d), torch.tensor(idx, dtype=torch.long, device=t.device))
        if leaf in module._parameters:
            module._parameters[leaf] = nn.Parameter(new.clone(), requires_grad=t.requires_grad)
        else:
            module._buffers[leaf] = new.clone()
        done[id(t)] = (t, getattr(module, leaf))  # holding the old tensor keeps its id from being reused
        touched[id(module)] = module
    _retie(model, done, touched)
    for module in touched.values():
        _sync(module)
    for name, spec in plan["mha"].items():
        old = model.get_submodule(name)
        new = PrunedMultiheadAttention(old.embed_dim, spec["num_heads"], spec["head_dim"], old.dropout,
                                       old.in_proj_bias is not None, old.batch_first)
        new.load_state_dict(old.state_dict())
        parent, leaf = _resolve(model, name)
        setattr(parent, leaf, new)
    for qname, value in plan["attrs"].items():
        module, leaf = _resolve(model, qname)
        setattr(module, leaf, value)
    resized(model)
    setattr(model, PLAN_ATTR, plan)
    return model


def compact(model: nn.Module, example_inputs: Any, *, check: bool = True, atol: float = 1e-4) -> nn.Module:
    """A physically smaller copy of a channel-, head-, neuron- or block-pruned ``model`` that computes the same outputs.

    Removed residual blocks (every parameter masked; see :mod:`prunekit.graph.blocks`) are deleted first.

    Units whose parameter slices are all masked are removed from every layer that holds them, and so
    are neurons/filters whose producing rows are all masked (see :mod:`prunekit.graph.fold`): the
    constant such a unit leaves (a BatchNorm shift, ``f(0)`` of an activation) is folded into its
    consumers' biases, or the unit is kept where that is impossible. The copy carries no masks. With
    ``check`` the copy is run on ``example_inputs`` and compared with the masked model, so a forward
    pass that hard-codes a size raises instead of returning a wrong model.
    """
    check_forward(model, example_inputs)
    reduced, blocks = without_removed(model, example_inputs)
    if blocks:  # removed residual blocks go first; the channels left are compacted on what remains
        small = compact(reduced, example_inputs, check=False, atol=atol) if Masks.from_model(reduced) else reduced
        unprune(small)
        setattr(small, PLAN_ATTR, {**getattr(small, PLAN_ATTR, {"params": {}, "attrs": {}, "mha": {}}), "blocks": blocks})
        if check:
            verify(model, small, example_inputs, atol)
        return small
    graph = trace(model, example_inputs)
    units, locked = units_of(graph)
    gone = pruned_roots(graph, units, locked)
    pinned = {graph.find(int(e)) for f in graph.fixed for e in f.labels.tolist()}  # sized by a number: kept
    dead = dead_roots(graph, units, locked) - gone - pinned
    if not dead:
        return _build(model, graph, gone, {}, example_inputs, check, atol)
    spans = consumer_inputs(model, graph, example_inputs)
    extra, folds = constants(graph, units, dead, spans)
    try:
        return _build(model, graph, gone | extra, folds, example_inputs, check, atol)
    except CompactionError:
        if not folds:
            raise
    # A folded constant also reached an op that is not a consumer (e.g. a sum over channels):
    # remove only the units every consumer sees as exactly zero.
    extra, _ = constants(graph, units, dead, spans, folding=False)
    return _build(model, graph, gone | extra, {}, example_inputs, check, atol)


def _build(model: nn.Module, graph: Graph, gone: set[int], folds: dict, example_inputs: Any, check: bool,
           atol: float) -> nn.Module:
    small = copy.deepcopy(model)
    unprune(small)
    fold(small, folds)
    apply_plan(small, make_plan(graph, gone))
    if check:
        verify(model, small, example_inputs, atol)
    return small


def verify(reference: nn.Module, small: nn.Module, example_inputs: Any, atol: float = 1e-4) -> float:
    """Largest output difference between ``reference`` and ``small``; raises if it exceeds ``atol``."""
    ref = _outputs(reference, example_inputs)
    try:
        got = _outputs(small, example_inputs)
    except Exception:  # described, with the op and layer, by re-running under a locator
        raise CompactionError(
            f"the compacted model fails {failure(small, example_inputs)}: the forward pass there hard-codes "
            "or checks a size that compaction changed — size it from the tensor (x.shape, -1) or from a module "
            "attribute, or exclude that layer"
        ) from None
    worst = 0.0
    for i, (a, b) in enumerate(zip(ref, got)):
        if a.shape != b.shape:
            where = divergence(reference, small, example_inputs, atol)
            raise CompactionError(f"output {i} of the compacted model has shape {tuple(b.shape)}, expected "
                                  f"{tuple(a.shape)}" + (f"; it first differs in layer {where!r}" if where else ""))
        if a.is_floating_point():
            scale = 1.0 + float(a.abs().max()) if a.numel() else 1.0
            worst = max(worst, float((a - b).abs().max()) / scale if a.numel() else 0.0)
    if worst > atol:
        where = divergence(reference, small, example_inputs, atol)
        raise CompactionError(
            f"the compacted model differs from the masked one by {worst:.2e} (relative)"
            + (f", first in layer {where!r}" if where else "") + ": an operation there is not zero-preserving "
            "— exclude that layer"
        )
    return worst
