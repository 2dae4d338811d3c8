"""Neuron-pruned units: removable once their producers are gone, if what they leave behind is foldable.

Neuron (filter) pruning zeroes a producer's output row and bias but leaves the consumer's input
column. Such a unit is *dead* when every producing row it owns (an output row of a conv/linear
weight, across residual adds and concats) is masked: its value is then the same for every input —
0 after ReLU, but ``beta - gamma·mean/σ`` after an eval-mode BatchNorm or ``f(0)`` after an
activation with ``f(0) ≠ 0``. The unit can go when, at each consumer, that constant is 0 or can be
folded into the consumer's bias (a Linear, or a conv without zero padding); otherwise it stays.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..masks import mask_of
from .core import Graph, SlotKey, Unit

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def dead_roots(graph: Graph, units: list[Unit], locked: set[int]) -> set[int]:
    """Units that own a producing row and whose every producing row is masked out."""
    producers = {t.out_slot for t in graph.macs}
    dead = set()
    for u in units:
        if u.root in locked:
            continue
        rows = [(key, i) for key, i in u.positions if key in producers]
        if rows and all(_masked_out(graph, key, i) for key, i in rows):
            dead.add(u.root)
    return dead


def _masked_out(graph: Graph, key: SlotKey, i: int) -> bool:
    m, p, d = key
    mask = mask_of(graph.modules[m], p)
    return mask is not None and not bool(mask.select(d, i).any())


def consumer_inputs(model: nn.Module, graph: Graph, example_inputs: Any) -> dict[str, torch.Tensor]:
    """Per consumer (Linear or conv module), each input channel's (min, max) over one forward pass.

    Returned as a ``(channels, 2)`` tensor per module name; consumers of other kinds are absent.
    """
    names = {t.in_slot[0] for t in graph.macs if t.in_slot is not None}
    seen: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(module: nn.Module, args: tuple) -> None:
            x = args[0].detach()
            if isinstance(module, nn.Linear):
                x = x.reshape(-1, x.shape[-1]).t()
            else:  # conv: channel dim is 1 when batched, 0 when not
                spatial = module.weight.dim() - 2
                x = x.movedim(x.dim() - spatial - 1, 0).reshape(x.shape[x.dim() - spatial - 1], -1)
            span = torch.stack([x.amin(1), x.amax(1)], 1)
            if getattr(module, "groups", 1) > 1:  # slot index i is position i of every group
                span = span.reshape(module.groups, -1, 2)
                span = torch.stack([span[..., 0].amin(0), span[..., 1].amax(0)], 1)
            old = seen.get(name)
            seen[name] = span if old is None else torch.stack([torch.minimum(old[:, 0], span[:, 0]),
                                                              torch.maximum(old[:, 1], span[:, 1])], 1)

        return fn

    handles = [graph.modules[n].register_forward_pre_hook(hook(n)) for n in names
               if isinstance(graph.modules[n], (nn.Linear, *_CONV))]
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*args)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return seen


def _foldable(module: nn.Module) -> bool:
    """Whether a constant input channel can move into ``module``'s bias exactly."""
    if module.bias is None:
        return False
    if isinstance(module, nn.Linear):
        return True
    zero_padded = module.padding_mode == "zeros" and (
        module.padding == "same" or (module.padding != "valid" and any(module.padding)))
    return module.groups == 1 and not zero_padded


def constants(graph: Graph, units: list[Unit], dead: set[int], spans: dict[str, torch.Tensor],
              folding: bool = True) -> tuple[set[int], dict[str, dict[int, float]]]:
    """The dead units that can go, and the nonzero constants each consumer must fold, by input index.

    Without ``folding`` only units that every consumer sees as exactly 0 go.
    """
    consumers = {t.in_slot for t in graph.macs if t.in_slot is not None}
    gone: set[int] = set()
    folds: dict[str, dict[int, float]] = {}
    for u in units:
        if u.root not in dead:
            continue
        pending, ok = [], True
        for key, i in u.positions:
            if key not in consumers:
                continue
            m = key[0]
            span = spans.get(m)
            if span is None:
                ok = False
                break
            lo, hi = float(span[i, 0]), float(span[i, 1])
            if lo == hi == 0.0:
                continue
            if not folding or hi - lo > 1e-6 * (1.0 + abs(lo) + abs(hi)) or not _foldable(graph.modules[m]):
                ok = False
                break
            pending.append((m, i, (lo + hi) / 2))
        if ok:
            gone.add(u.root)
            for m, i, c in pending:
                folds.setdefault(m, {})[i] = c
    return gone, folds


@torch.no_grad()
def fold(model: nn.Module, folds: dict[str, dict[int, float]]) -> None:
    """Add each removed input channel's constant contribution to its consumer's bias (in place)."""
    for name, by_index in folds.items():
        module = model.get_submodule(name)
        idx = torch.tensor(list(by_index), dtype=torch.long, device=module.weight.device)
        c = torch.tensor(list(by_index.values()), dtype=module.weight.dtype, device=module.weight.device)
        cols = module.weight.index_select(1, idx)
        cols = cols.reshape(cols.shape[0], cols.shape[1], -1).sum(2)  # a conv sums its kernel
        module.bias.add_(cols @ c)
