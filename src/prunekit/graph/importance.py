"""Unit scores: a registered score on every parameter slice a traced unit owns, reduced over the unit.

A unit's members are (tensor, dim, index) slices: producer rows, norm entries, consumer columns.
Each member gets a score (``Score.slices``); ``reduce`` (sum/mean/max) turns them into the unit's score.
"""
from __future__ import annotations

from typing import Any

import torch

from ..scores.base import Score, ScoreContext, Target
from .core import Graph, SlotKey, Unit

REDUCTIONS = ("sum", "mean", "max")


def targets_of(graph: Graph, keys: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], Target]:
    """The parameters the graph slices (those of ``keys`` only, if given), as scoring Targets."""
    out = {}
    for m, p, _ in graph.slots:
        if (m, p) not in out and graph.modules[m]._parameters.get(p) is not None and (keys is None or (m, p) in keys):
            out[(m, p)] = Target(f"{m}.{p}" if m else p, graph.modules[m], p)
    return out


def member_scores(graph: Graph, score: Score, state: Any, seed: int, keys: set[SlotKey]) -> dict[SlotKey, torch.Tensor]:
    """Per slot of ``keys``, one score per index (NaN where the score says nothing about that slice)."""
    targets = targets_of(graph)
    out = {}
    with torch.no_grad():
        for i, key in enumerate(graph.slots):
            target = targets.get(key[:2])
            if target is not None and key in keys:
                out[key] = score.slices(target.param.detach(), key[2], ScoreContext(target, i, seed, state)).float()
    return out


def unit_scores(units: list[Unit], graph: Graph, score: Score, reduce: str, state: Any, seed: int,
                keys: set[SlotKey]) -> torch.Tensor:
    """One score per unit (NaN: the score cannot rank this unit, e.g. bn-scale without a BatchNorm).

    ``reduce`` is one of :data:`REDUCTIONS`; only the slots in ``keys`` are scored (the prepared ones).
    """
    members = member_scores(graph, score, state, seed, keys)
    res = torch.full((len(units),), float("nan"))
    for i, u in enumerate(units):
        vals = [members[key][idx] for key, idx in u.positions if key in members]
        vals = torch.stack(vals) if vals else torch.empty(0)
        vals = vals[~vals.isnan()]
        if vals.numel():
            res[i] = vals.sum() if reduce == "sum" else vals.mean() if reduce == "mean" else vals.max()
    return res
