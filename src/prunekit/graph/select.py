"""What traced groups allow: the guard that keeps every layer non-empty, and MACs for any choice of units.

Groups are sets of coupled units (a residual stream, one block's inner width, one attention's heads).
The scopes in ``prunekit.scope`` select; these facts become each group's cap and protected units.
"""
from __future__ import annotations

import torch

from .core import Graph, SlotKey, Unit


def slot_units(graph: Graph, units: list[Unit]) -> dict[SlotKey, torch.Tensor]:
    """For every parameter slot, the unit index of each of its positions."""
    index = {u.root: i for i, u in enumerate(units)}
    return {k: torch.tensor([index[graph.find(int(e))] for e in v.tolist()]) for k, v in graph.slots.items()}


def guard(by_slot: dict[SlotKey, torch.Tensor], units: list[Unit], members: list[int],
          candidates: set[int]) -> tuple[bool, list[list[int]]]:
    """How a group's candidate ``members`` keep every slot non-empty.

    Returns whether some slot holds exactly these candidates and nothing else (then at most
    ``len(members) - 1`` may go), and the candidate sets of slots that hold only part of them (one
    unit of each must stay). Slots that also hold a non-candidate unit are safe.
    """
    whole, partial = False, []
    keys = {k for i in members for k, _ in units[i].positions}
    full = set(members)
    for k in keys:
        inside = set(by_slot[k].tolist())
        if not inside <= candidates:
            continue
        if inside == full:
            whole = True
        else:
            partial.append(sorted(inside))
    return whole, partial


class MacCounter:
    """MACs of the recorded conv/linear calls once some units are removed (for MAC targets)."""

    def __init__(self, graph: Graph, units: list[Unit], by_slot: dict[SlotKey, torch.Tensor]):
        self.graph, self.n, self.by_slot = graph, len(units), by_slot

    def __call__(self, gone: torch.Tensor) -> int:
        """MACs with the units flagged in ``gone`` (a bool vector over all units) removed."""
        total = 0
        for term in self.graph.macs:
            out_kept = int((~gone[self.by_slot[term.out_slot]]).sum())
            in_kept = int((~gone[self.by_slot[term.in_slot]]).sum()) if term.in_slot else term.in_size
            total += term.positions * out_kept * in_kept * term.kernel
        return total
