"""Traced channels as units: coupled channel groups found by ``prunekit.graph``, one part per group.

Removing channel *c* of a conv also removes input *c* of its consumers, the matching norm entries and
the partner channel across a residual add; ``graph`` traces these couplings on ``example_inputs``.
A unit is scored by applying the score to each parameter slice it owns and reducing (``reduce``).
Embeddings and channel-mixing norms are locked by the trace and never removed; so are the model's
outputs unless ``prune_outputs`` names their layer (``pk.compact`` still keeps such zeroed outputs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..errors import InvalidSparsityError, NoPrunableLayersError, PruneError, UnknownNameError
from ..graph.compact import pruned_roots
from ..graph.core import Graph, Unit, units_of
from ..graph.importance import REDUCTIONS, targets_of, unit_scores
from ..graph.prune import candidates, mask_units, normalized
from ..graph.select import MacCounter, guard, slot_units
from ..graph.trace import trace
from ..scores import Score
from .base import PRUNABLE_TYPES, TRANSPOSED, Context, Part, Structure, register


def _produces(module: nn.Module, dim: int) -> bool:
    """Whether a slot along ``dim`` of ``module`` is that layer's output (not a consumer's input columns)."""
    if isinstance(module, PRUNABLE_TYPES):
        return dim == (1 if isinstance(module, TRANSPOSED) else 0)
    return True


@dataclass(eq=False)
class Traced:
    """What the parts of one traced model share: the graph, its units, those already pruned, a MAC counter."""

    graph: Graph
    units: list[Unit]
    gone: set[int]  # roots already pruned
    macs: MacCounter


@dataclass(eq=False)
class Group:
    """One part's bookkeeping: the traced model, its unit indices, and the guard's partial slots."""

    traced: Traced
    members: list[int]
    partial: list[list[int]]
    scores: torch.Tensor | None = None


@register("channels")
class Channels(Structure):
    """Coupled channels (filters, hidden units) found by tracing; a part is one coupled group.

    Options: ``reduce`` (sum/mean/max over a unit's slices, default mean), ``normalize`` (divide
    scores by their group's mean so that a global ranking compares groups fairly), ``max_ratio``
    (the most of any group that may go) and ``round_to`` (kept group widths stay multiples of it).
    No layer ever loses all its channels. ``macs_reduction=`` targets dense / remaining MACs.

    Names: a part is named by the layers that produce its channels (and their norms), so a
    per-layer key ``"conv2"`` sets the ratio of conv2's output channels; ``exclude=["conv2"]``
    leaves every parameter of conv2 untouched (its outputs and its input columns).
    """

    kind = "channels"
    removes_outputs = True
    needs_example_inputs = True
    uses_example_inputs = True

    def __init__(self, reduce: str = "mean", normalize: bool = True, max_ratio: float = 1.0, round_to: int = 1):
        if reduce not in REDUCTIONS:
            raise UnknownNameError(f"unknown reduction {reduce!r}; valid: {', '.join(REDUCTIONS)}")
        if not isinstance(max_ratio, (int, float)) or not 0 < max_ratio <= 1:
            raise InvalidSparsityError(f"max_ratio must be in (0, 1] (got {max_ratio!r})")
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise InvalidSparsityError(f"round_to must be a positive integer (got {round_to!r})")
        self.reduce, self.normalize, self.max_ratio, self.round_to = reduce, normalize, max_ratio, round_to

    def parts(self, ctx: Context) -> list[Part]:
        if ctx.example_inputs is None:
            raise PruneError(f"structure={self.name!r} traces the model: pass example_inputs= (a batch of inputs)")
        graph = trace(ctx.model, ctx.example_inputs)
        units, locked = units_of(graph)
        cands = candidates(graph, units, locked - self._named_outputs(graph, units, ctx), self.kind,
                           lambda n, m: ctx.exclude(n, m))
        if not cands:
            mine = {u.root for u in units if u.kind == self.kind and u.root in locked}
            why = "; ".join(graph.reasons(mine))
            raise NoPrunableLayersError(
                f"no prunable {self.kind} found: every unit is locked (outputs, embeddings, channel-mixing norms, "
                "dims sized by a number in forward) or excluded" + ("; heads come from attention layers" if self.kind == "heads" else "")
                + (f". Locked by {why}" if why else "")
            )
        by_slot = slot_units(graph, units)
        traced = Traced(graph, units, pruned_roots(graph, units, locked), MacCounter(graph, units, by_slot))
        size: dict[int, int] = {}
        slots: dict[int, set[tuple[str, str]]] = {}  # every parameter a group touches, locked units' included
        for u in units:
            size[u.group] = size.get(u.group, 0) + 1
            slots.setdefault(u.group, set()).update(k[:2] for k, _ in u.positions)
        groups: dict[int, list[int]] = {}
        for i in cands:
            groups.setdefault(units[i].group, []).append(i)
        parts, cand_set = [], set(cands)
        for g, members in groups.items():
            whole, partial = guard(by_slot, units, members, cand_set)
            cap = math.floor(self.max_ratio * size[g] + 1e-9)
            if whole:
                cap = min(cap, len(members) - 1)
            keys = {k for i in members for k, _ in units[i].positions}
            owners = sorted({k[:2] for k in keys if _produces(graph.modules[k[0]], k[2])}) or sorted({k[:2] for k in keys})
            modules = [(m, graph.modules[m], p) for m, p in owners]
            part_targets = list(targets_of(graph, slots[g]).values())
            parts.append(Part(owners[0][0], modules, len(members), part_targets, len(parts), cap, self.round_to,
                              size[g], Group(traced, members, partial)))
        return parts

    @staticmethod
    def _named_outputs(graph: Graph, units: list[Unit], ctx: Context) -> set[int]:
        """Roots of output units that ``prune_outputs`` names (their layer), unless locked for another reason."""
        if not ctx.prune_outputs:
            return set()
        other = {graph.find(e) for e in graph.locked}
        named = {n for n, m in graph.modules.items() if ctx.prune_outputs is True or ctx.prune_outputs(n, m)}
        outputs = {graph.find(e) for e in graph.outputs} - other
        return {u.root for u in units if u.root in outputs and any(k[0] in named for k, _ in u.positions)}

    def prepare(self, parts: list[Part], score: Score, ctx: Context) -> None:
        """Score every traced unit once, then fix each part's scores and cap."""
        traced: Traced = parts[0].data.traced
        s = score.units(len(traced.units), ctx.seed)
        if s is None:
            scored = {(t.module, t.pname) for p in parts for t in p.targets}
            s = unit_scores(traced.units, traced.graph, score, self.reduce, ctx.state, ctx.seed,
                            {k for k in traced.graph.slots if (traced.graph.modules[k[0]], k[1]) in scored})
            if self.normalize:
                s = normalized(s, traced.units)
        if bool(torch.cat([s[p.data.members] for p in parts]).isnan().all()):
            raise PruneError(f"score {getattr(score, 'name', score)!r} cannot rank any prunable unit "
                             "(bn-scale needs BatchNorm layers)")
        for p in parts:
            g: Group = p.data
            mine = s[g.members].float().clone()
            mine[mine.isnan()] = math.inf  # unrankable: kept
            for j, i in enumerate(g.members):
                if traced.units[i].root in traced.gone:
                    mine[j] = -math.inf  # masks are monotone: already-pruned units stay pruned
            index = {i: j for j, i in enumerate(g.members)}
            for slot in g.partial:  # one unit of a partly covered slot stays: its best
                local = [index[i] for i in slot]
                if not bool(mine[local].isposinf().any()):
                    mine[local[int(mine[local].argmax())]] = math.inf
            p.cap = min(p.cap, int((mine < math.inf).sum()))
            g.scores = mine

    def scores(self, part: Part, score: Score, ctx: Context) -> Iterator[torch.Tensor]:
        yield part.data.scores

    def apply(self, part: Part, keep: torch.Tensor) -> None:
        g: Group = part.data
        mask_units(g.traced.graph, [g.traced.units[i] for i, k in zip(g.members, keep.tolist()) if not k])

    def pruned(self, part: Part) -> int:
        g: Group = part.data
        return sum(g.traced.units[i].root in g.traced.gone for i in g.members)

    def macs(self, parts: list[Part], keeps: list[torch.Tensor] | None = None) -> int:
        """MACs of the traced model once the units not kept in ``keeps`` are removed (None: dense)."""
        traced: Traced = parts[0].data.traced
        gone = torch.zeros(len(traced.units), dtype=torch.bool)
        for p, keep in zip(parts, keeps or []):
            gone[torch.tensor(p.data.members)[~keep]] = True
        return traced.macs(gone)

