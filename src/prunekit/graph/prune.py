"""Traced units as prunable parts: which units a structure may remove, fair scores, and their masks."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..masks import attach
from .core import Graph, Unit


def candidates(graph: Graph, units: list[Unit], locked: set[int], kind: str,
               excluded: Callable[[str, nn.Module], bool]) -> list[int]:
    """Indices of the units of ``kind`` that may go: not locked and touching no excluded module."""
    skip = {name for name, module in graph.modules.items() if excluded(name, module)}
    return [i for i, u in enumerate(units)
            if u.root not in locked and u.kind == kind and not any(k[0] in skip for k, _ in u.positions)]


def normalized(scores: torch.Tensor, units: list[Unit]) -> torch.Tensor:
    """Each unit's score divided by the mean score of its coupled group (NaN stays NaN)."""
    out = scores.clone()
    groups: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        groups.setdefault(u.group, []).append(i)
    for members in groups.values():
        vals = scores[members]
        mean = vals[~vals.isnan()].mean() if bool((~vals.isnan()).any()) else torch.tensor(1.0)
        out[members] = vals / (mean if mean > 0 else 1.0)
    return out


def mask_units(graph: Graph, gone: list[Unit]) -> None:
    """Zero every parameter slice of the removed units (producer rows, norm entries, consumer columns)."""
    masks: dict[tuple[str, str], torch.Tensor] = {}
    for u in gone:
        for (m, p, d), i in u.positions:
            t = graph.modules[m]._parameters.get(p)
            if t is None:
                continue
            if (m, p) not in masks:
                masks[(m, p)] = torch.ones(t.shape, dtype=torch.bool)
            masks[(m, p)].select(d, i).fill_(False)
    for (m, p), mask in masks.items():
        attach(graph.modules[m], p, mask)
