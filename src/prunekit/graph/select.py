"""Allocation: which units go, under a scope, a per-group maximum ratio, a guard and ``round_to``.

Groups are sets of coupled units (a residual stream, one block's inner width, one attention's heads).
``global`` ranks all candidate units together; ``layer`` removes the same fraction in every group.
The guard keeps at least one position in every parameter slot, so no layer is emptied.
"""
from __future__ import annotations

import math

import torch

from ..errors import InvalidSparsityError, UnknownNameError
from .core import Graph, SlotKey, Unit


class Allocator:
    """Chooses pruned units for a sparsity, and counts MACs for any choice (for MAC targets)."""

    def __init__(self, graph: Graph, units: list[Unit], candidates: list[int], scores: torch.Tensor,
                 scope: str = "global", max_ratio: float = 1.0, round_to: int = 1):
        if scope not in ("global", "layer"):
            raise UnknownNameError(f"unknown scope {scope!r} for structured pruning; valid: global, layer")
        if not 0 < max_ratio <= 1:
            raise InvalidSparsityError(f"max_ratio must be in (0, 1] (got {max_ratio})")
        if not isinstance(round_to, int) or round_to < 1:
            raise InvalidSparsityError(f"round_to must be a positive integer (got {round_to!r})")
        self.graph, self.units, self.cands = graph, units, candidates
        self.scope, self.max_ratio, self.round_to = scope, max_ratio, round_to
        self.finite = [bool(v < math.inf) for v in scores.tolist()]
        self.order = sorted(candidates, key=lambda i: (float(scores[i]), i))
        self.group_size: dict[int, int] = {}
        for u in units:
            self.group_size[u.group] = self.group_size.get(u.group, 0) + 1
        self.slot_count = {k: len(v) for k, v in graph.slots.items()}
        self.owned: list[dict[SlotKey, int]] = []
        for u in units:
            counts: dict[SlotKey, int] = {}
            for key, _ in u.positions:
                counts[key] = counts.get(key, 0) + 1
            self.owned.append(counts)
        self.unit_index = {u.root: i for i, u in enumerate(units)}
        self.slot_units = {k: torch.tensor([self.unit_index[graph.find(int(e))] for e in v.tolist()])
                           for k, v in graph.slots.items()}

    def select(self, sparsity: float) -> set[int]:
        """Indices (into ``units``) of the units to prune for this sparsity over the candidates."""
        left = dict(self.slot_count)
        dropped_in: dict[int, int] = {}
        chosen: set[int] = set()

        def allowed(i: int) -> bool:
            if not self.finite[i]:
                return False
            g = self.units[i].group
            cap = math.floor(self.max_ratio * self.group_size[g] + 1e-9)
            if dropped_in.get(g, 0) + 1 > cap:
                return False
            return all(left[k] - n >= 1 for k, n in self.owned[i].items())

        def take(i: int) -> None:
            chosen.add(i)
            g = self.units[i].group
            dropped_in[g] = dropped_in.get(g, 0) + 1
            for k, n in self.owned[i].items():
                left[k] -= n

        if self.scope == "global":
            quota = {None: round(sparsity * len(self.cands))}
        else:
            per: dict[int, int] = {}
            for i in self.cands:
                per[self.units[i].group] = per.get(self.units[i].group, 0) + 1
            quota = {g: round(sparsity * n) for g, n in per.items()}
        for i in self.order:
            key = None if self.scope == "global" else self.units[i].group
            if quota[key] > 0 and allowed(i):
                take(i)
                quota[key] -= 1
        return self._round(chosen)

    def _round(self, chosen: set[int]) -> set[int]:
        """Give back the highest-scoring pruned units of a group until its size is a multiple of round_to."""
        if self.round_to == 1:
            return chosen
        rank = {i: r for r, i in enumerate(self.order)}
        by_group: dict[int, list[int]] = {}
        for i in chosen:
            by_group.setdefault(self.units[i].group, []).append(i)
        for g, members in by_group.items():
            members.sort(key=rank.get)
            while members and (self.group_size[g] - len(members)) % self.round_to:
                chosen.discard(members.pop())
        return chosen

    def macs(self, chosen: set[int]) -> int:
        """MACs of the recorded conv/linear calls once the ``chosen`` units are removed."""
        gone = torch.zeros(len(self.units), dtype=torch.bool)
        if chosen:
            gone[list(chosen)] = True
        total = 0
        for term in self.graph.macs:
            out_kept = int((~gone[self.slot_units[term.out_slot]]).sum())
            in_kept = int((~gone[self.slot_units[term.in_slot]]).sum()) if term.in_slot else term.in_size
            total += term.positions * out_kept * in_kept * term.kernel
        return total

    def for_macs(self, target: float) -> tuple[float, set[int]]:
        """The smallest sparsity whose MAC reduction (dense MACs / remaining MACs) reaches ``target``."""
        dense = self.macs(set())
        if not target >= 1:
            raise InvalidSparsityError(f"macs_reduction must be >= 1 (got {target})")
        best = self.select(1.0)
        if dense / max(self.macs(best), 1) < target:
            raise InvalidSparsityError(
                f"macs_reduction={target} is unreachable: removing every prunable unit the guard and "
                f"max_ratio allow gives {dense / max(self.macs(best), 1):.2f}x; lower the target"
            )
        lo, hi = 0, len(self.cands)  # bisect on the number of units (sparsity k / n)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if dense / max(self.macs(self.select(mid / len(self.cands))), 1) >= target:
                hi = mid
            else:
                lo = mid
        hi = hi / len(self.cands)
        return hi, self.select(hi)
