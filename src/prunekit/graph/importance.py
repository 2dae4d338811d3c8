"""Group scores: the importance of a unit, reduced over every parameter slice it owns.

A unit's members are (tensor, dim, index) slices: producer rows, norm entries, consumer columns.
Each member gets a score; ``reduce`` (sum/mean/max) turns them into the unit's score.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import MissingDataError, UnknownNameError
from ..scores.gradient import batches
from .core import Graph, SlotKey, Unit

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
GROUP_SCORES = ("l1", "l2", "magnitude", "bn-scale", "taylor", "gradient", "fpgm", "random")


def _params(graph: Graph) -> dict[SlotKey, torch.Tensor]:
    out = {}
    for key in graph.slots:
        t = graph.modules[key[0]]._parameters.get(key[1])
        if t is not None:
            out[key] = t.detach()
    return out


def _slices(t: torch.Tensor, d: int) -> torch.Tensor:
    return t.movedim(d, 0).reshape(t.shape[d], -1)


def _taylor_grads(model: nn.Module, data: Any, loss_fn: Callable | None) -> dict[int, torch.Tensor]:
    if data is None:
        raise MissingDataError("score='taylor' needs data: pass data=(x, y) or an iterable of batches")
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in params]
    was = model.training
    model.eval()
    try:
        for x, y in batches(data):
            got = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
            for acc, g in zip(grads, got):
                if g is not None:
                    acc.add_(g)
    finally:
        model.train(was)
    return {id(p): g for p, g in zip(params, grads)}


def member_scores(graph: Graph, score: str, model: nn.Module, data: Any = None,
                  loss_fn: Callable | None = None) -> dict[SlotKey, torch.Tensor]:
    """Per slot, one score per index (NaN where the score says nothing about that slice)."""
    params = _params(graph)
    grads = _taylor_grads(model, data, loss_fn) if score in ("taylor", "gradient") else {}
    out = {}
    for key, t in params.items():
        m, p, d = key
        s = _slices(t, d)
        if score == "l1":
            v = s.abs().sum(1)
        elif score in ("l2", "magnitude"):
            v = s.norm(dim=1)
        elif score == "bn-scale":
            is_gamma = isinstance(graph.modules[m], _BN) and p == "weight"
            v = s[:, 0].abs() if is_gamma else torch.full((s.shape[0],), float("nan"))
        elif score in ("taylor", "gradient"):
            g = grads.get(id(graph.modules[m]._parameters[p]))
            v = (s * _slices(g, d)).abs().sum(1) if g is not None else torch.zeros(s.shape[0])
        elif score == "fpgm":
            v = torch.cdist(s[None], s[None])[0].sum(1) if t.dim() >= 2 else torch.full((s.shape[0],), float("nan"))
        else:
            raise UnknownNameError(f"unknown group score {score!r}; valid: {', '.join(GROUP_SCORES)}")
        out[key] = v.float()
    return out


def unit_scores(units: list[Unit], graph: Graph, score: str, reduce: str, model: nn.Module,
                data: Any = None, loss_fn: Callable | None = None, seed: int = 0) -> torch.Tensor:
    """One score per unit (NaN: the score cannot rank this unit, e.g. bn-scale without a BatchNorm)."""
    if score == "random":
        return torch.rand(len(units), generator=torch.Generator().manual_seed(seed))
    if reduce not in ("sum", "mean", "max"):
        raise UnknownNameError(f"unknown reduction {reduce!r}; valid: sum, mean, max")
    members = member_scores(graph, score, model, data, loss_fn)
    res = torch.full((len(units),), float("nan"))
    for i, u in enumerate(units):
        vals = [members[key][idx] for key, idx in u.positions if key in members]
        vals = torch.stack(vals) if vals else torch.empty(0)
        vals = vals[~vals.isnan()]
        if vals.numel():
            res[i] = vals.sum() if reduce == "sum" else vals.mean() if reduce == "mean" else vals.max()
    return res
