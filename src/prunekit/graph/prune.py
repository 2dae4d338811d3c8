"""Structured pruning entry point: trace, score groups, allocate, and mask whole units."""
from __future__ import annotations

import fnmatch
import math
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import InvalidSparsityError, NoPrunableLayersError, PruneError, UnknownNameError
from ..masks import Masks, attach
from ..scores.group import GroupScore, group_registry
from .compact import pruned_roots
from .core import Graph, Unit, units_of
from .importance import unit_scores
from .select import Allocator
from .trace import trace

STRUCTURES = ("channels", "heads")


def _excluded_modules(graph: Graph, exclude: Iterable[Any]) -> set[str]:
    rules = (exclude,) if isinstance(exclude, (str, type)) else tuple(exclude)
    out = set()
    for name, module in graph.modules.items():
        for r in rules:
            if (isinstance(r, type) and isinstance(module, r)) or (
                isinstance(r, str) and (name == r or fnmatch.fnmatchcase(name, r) or name.startswith(r + "."))
            ):
                out.add(name)
    return out


def candidates(graph: Graph, units: list[Unit], locked: set[int], structure: str,
               exclude: Iterable[Any] = ()) -> list[int]:
    """Indices of the units this structure may remove: not locked, right kind, no excluded layer."""
    if structure not in STRUCTURES:
        raise UnknownNameError(f"unknown structure {structure!r} for graph pruning; valid: {', '.join(STRUCTURES)}")
    skip = _excluded_modules(graph, exclude)
    return [i for i, u in enumerate(units)
            if u.root not in locked and u.kind == structure and not any(k[0] in skip for k, _ in u.positions)]


def prune_structured(
    model: nn.Module,
    sparsity: float | None = None,
    *,
    example_inputs: Any = None,
    structure: str = "channels",
    score: str | GroupScore | None = None,
    reduce: str = "mean",
    scope: str | None = None,
    macs_reduction: float | None = None,
    max_ratio: float = 1.0,
    round_to: int = 1,
    normalize: bool = True,
    data: Any = None,
    loss_fn: Callable | None = None,
    exclude: Iterable[Any] = (),
    seed: int = 0,
) -> Masks:
    """Mask whole channels (or attention heads) of ``model``, coupled across layers by tracing.

    ``sparsity`` is the fraction of prunable units removed (counted over the units in scope);
    ``macs_reduction=r`` instead prunes until dense MACs / remaining MACs ≥ r. ``pk.compact`` then
    removes the masked units for real. ``score``: a name in ``pk.scores.group_registry`` (l1, l2 the
    default, bn-scale, taylor which needs ``data``, fpgm, random) or a ``GroupScore``, reduced over
    each unit's slices by ``reduce`` (sum/mean/max); ``normalize`` divides scores by their group's mean so that a global ranking compares groups fairly.
    ``max_ratio`` caps the fraction removed from any coupled group, ``round_to`` keeps group widths
    multiples of it, and no layer ever loses all of its channels.
    """
    if example_inputs is None:
        raise PruneError(f"structure={structure!r} traces the model: pass example_inputs= (a batch of inputs)")
    if (sparsity is None) == (macs_reduction is None):
        raise InvalidSparsityError("pass exactly one of sparsity= or macs_reduction=")
    if sparsity is not None and (not isinstance(sparsity, (int, float)) or math.isnan(sparsity)
                                 or not 0 <= sparsity < 1):
        raise InvalidSparsityError(f"sparsity must be in [0, 1) (got {sparsity!r}); it is the fraction of units removed")
    graph = trace(model, example_inputs)
    units, locked = units_of(graph)
    cands = candidates(graph, units, locked, structure, exclude)
    if not cands:
        raise NoPrunableLayersError(
            f"no prunable {structure} found: every unit is locked (outputs, embeddings, channel-mixing norms) "
            "or excluded" + ("; heads come from attention layers" if structure == "heads" else "")
        )
    group_score = group_registry.get(score or "l2")
    scores = group_score.units(len(units), seed)
    if scores is None:
        scores = unit_scores(units, graph, group_score, reduce, model, data, loss_fn, seed)
        if normalize:
            scores = normalized(scores, units)
    if bool(scores[cands].isnan().all()):
        raise PruneError(f"score {score!r} cannot rank any prunable unit (bn-scale needs BatchNorm layers)")
    already = pruned_roots(graph, units, locked)
    scores = scores.clone()
    for i, u in enumerate(units):
        if u.root in already:
            scores[i] = -math.inf  # masks are monotone: already-pruned units stay pruned
    scores = torch.where(scores.isnan(), torch.full_like(scores, math.inf), scores)  # unrankable: kept
    alloc = Allocator(graph, units, cands, scores, scope or "global", max_ratio, round_to)
    if macs_reduction is not None:
        _, chosen = alloc.for_macs(macs_reduction)
    else:
        chosen = alloc.select(float(sparsity))
    _mask(graph, [units[i] for i in chosen])
    return Masks.from_model(model)


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


def _mask(graph: Graph, gone: list[Unit]) -> None:
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
