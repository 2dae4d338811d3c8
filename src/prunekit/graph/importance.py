"""Unit scores: a group score (``prunekit.scores.group``) for every parameter slice a unit owns, reduced.

A unit's members are (tensor, dim, index) slices: producer rows, norm entries, consumer columns.
Each member gets a score; ``reduce`` (sum/mean/max) turns them into the unit's score.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import UnknownNameError
from ..scores.base import ScoreContext, Target
from ..scores.group import GroupScore
from .core import Graph, SlotKey, Unit

REDUCTIONS = ("sum", "mean", "max")


def _targets(graph: Graph) -> dict[tuple[str, str], Target]:
    """Every parameter the graph slices, as a scoring Target (qualified name, module, attribute)."""
    out = {}
    for m, p, _ in graph.slots:
        if (m, p) not in out and graph.modules[m]._parameters.get(p) is not None:
            out[(m, p)] = Target(f"{m}.{p}" if m else p, graph.modules[m], p)
    return out


def member_scores(graph: Graph, score: GroupScore, model: nn.Module, data: Any = None,
                  loss_fn: Callable | None = None, seed: int = 0) -> dict[SlotKey, torch.Tensor]:
    """Per slot, one score per index (NaN where the score says nothing about that slice)."""
    targets = _targets(graph)
    state = score.prepare(model, list(targets.values()), data, loss_fn)
    out = {}
    for i, key in enumerate(graph.slots):
        target = targets.get(key[:2])
        if target is not None:
            context = ScoreContext(target, i, seed, state)
            out[key] = score(target.param.detach(), key[2], context).float()
    return out


def unit_scores(units: list[Unit], graph: Graph, score: GroupScore, reduce: str, model: nn.Module,
                data: Any = None, loss_fn: Callable | None = None, seed: int = 0) -> torch.Tensor:
    """One score per unit (NaN: the score cannot rank this unit, e.g. bn-scale without a BatchNorm)."""
    if reduce not in REDUCTIONS:
        raise UnknownNameError(f"unknown reduction {reduce!r}; valid: {', '.join(REDUCTIONS)}")
    members = member_scores(graph, score, model, data, loss_fn, seed)
    res = torch.full((len(units),), float("nan"))
    for i, u in enumerate(units):
        vals = [members[key][idx] for key, idx in u.positions if key in members]
        vals = torch.stack(vals) if vals else torch.empty(0)
        vals = vals[~vals.isnan()]
        if vals.numel():
            res[i] = vals.sum() if reduce == "sum" else vals.mean() if reduce == "mean" else vals.max()
    return res
