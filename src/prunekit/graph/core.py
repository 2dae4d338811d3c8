"""The coupling graph: elements (one per channel position), union-find units, and parameter slots.

Every channel position that tracing sees gets an *element* id. Positions that must be removed
together are unioned; an equivalence class is one prunable *unit*. A *slot* records which element
each index of a parameter dimension belongs to, so masks and compaction just read the slots.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

SlotKey = tuple[str, str, int]  # (module name, tensor name, dim)


@dataclass
class MacTerm:
    """One recorded conv/linear call: positions × kept outputs × kept inputs × kernel volume."""

    positions: int
    out_slot: SlotKey
    in_slot: SlotKey | None
    in_size: int
    kernel: int


@dataclass
class Graph:
    """Union-find over elements plus the slots, locks and facts compaction needs."""

    modules: dict[str, nn.Module]
    parent: list[int] = field(default_factory=list)
    locked: set[int] = field(default_factory=set)
    outputs: set[int] = field(default_factory=set)  # elements the model returns: locked unless asked by name
    heads: set[int] = field(default_factory=set)
    interface: set[int] = field(default_factory=set)  # embedding widths: locked unless they index heads
    slots: dict[SlotKey, torch.Tensor] = field(default_factory=dict)
    macs: list[MacTerm] = field(default_factory=list)
    attrs: list[tuple[str, str, torch.Tensor]] = field(default_factory=list)  # module, attribute, its labels
    mha: dict[str, int] = field(default_factory=dict)  # MultiheadAttention name -> head count
    sizes: list = field(default_factory=list)  # sizes.Equation: dims sized by module attributes
    fixed: list = field(default_factory=list)  # sizes.Fixed: dims sized by a number or another tensor's shape
    why: dict[int, str] = field(default_factory=dict)  # locked element -> the op and layer that locked it
    context: str = ""  # the op being traced, named in lock reasons
    values: dict[str, int] = field(default_factory=dict)  # every int attribute's value when traced

    def new(self, n: int, locked: bool = False, interface: bool = False) -> torch.Tensor:
        """``n`` fresh elements (``locked``: never prunable, e.g. zero padding; ``interface``: an
        embedding's width, kept unless it turns out to be per-head, like T5's position bias)."""
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        if locked:
            self.locked.update(range(start, start + n))
        if interface:
            self.interface.update(range(start, start + n))
        return torch.arange(start, start + n)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def roots(self, labels: torch.Tensor) -> torch.Tensor:
        values, inverse = labels.reshape(-1).unique(return_inverse=True)
        found = torch.tensor([self.find(v) for v in values.tolist()], dtype=torch.long)
        return found[inverse].reshape(labels.shape)

    def union(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Union ``a`` and ``b`` elementwise (broadcast)."""
        a, b = torch.broadcast_tensors(a, b)
        pairs = torch.stack([a.reshape(-1), b.reshape(-1)], 1).unique(dim=0).tolist()
        for x, y in pairs:
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def union_all(self, labels: torch.Tensor) -> None:
        """Make every element of ``labels`` one unit."""
        flat = labels.reshape(-1)
        self.union(flat[:1], flat)

    def lock(self, labels: torch.Tensor, why: str = "") -> None:
        """Keep these elements; remember the op (and ``why``) for messages about what is not prunable."""
        values = [int(v) for v in labels.reshape(-1).unique().tolist()]
        self.locked.update(values)
        reason = f"{self.context}: {why}" if why and self.context else why or self.context
        if reason:
            for v in values:
                self.why.setdefault(v, reason)

    def reasons(self, roots: set[int], limit: int = 3) -> list[str]:
        """Distinct reasons why units with these roots were locked (first ``limit``, in trace order)."""
        found: list[str] = []
        for e, reason in self.why.items():
            if reason not in found and self.find(e) in roots:
                found.append(reason)
                if len(found) == limit:
                    break
        return found

    def bind(self, module: str, name: str, dim: int, labels: torch.Tensor) -> None:
        """Say that index i of ``module.name`` along ``dim`` belongs to element ``labels[i]``."""
        key = (module, name, dim)
        labels = labels.reshape(-1)
        if key in self.slots:
            self.union(self.slots[key], labels)
        else:
            self.slots[key] = labels.clone()

    def canonical(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels as roots, with every dimension along which they do not vary narrowed to size 1."""
        for d in range(labels.dim()):  # narrow first (cheap), then map to roots, then narrow again
            if labels.shape[d] > 1 and labels.stride(d) == 0:
                labels = labels.narrow(d, 0, 1)
        labels = self.roots(labels)
        for d in range(labels.dim()):
            if labels.shape[d] > 1 and bool((labels == labels.narrow(d, 0, 1)).all()):
                labels = labels.narrow(d, 0, 1)
        return labels.contiguous()


def aligned(labels: torch.Tensor, ndim: int) -> torch.Tensor:
    """Labels right-aligned (broadcast style) to ``ndim`` dimensions."""
    return labels.reshape((1,) * (ndim - labels.dim()) + tuple(labels.shape))


def varying(labels: torch.Tensor) -> list[int]:
    """Dimensions along which canonical labels vary."""
    return [d for d in range(labels.dim()) if labels.shape[d] > 1]


@dataclass
class Unit:
    """One prunable unit: its root element, slot positions, kind and coupled group."""

    root: int
    positions: list[tuple[SlotKey, int]]
    kind: str  # "channels" or "heads"
    group: int = -1


def units_of(graph: Graph) -> tuple[list[Unit], set[int]]:
    """All units that own a parameter position, and the roots of the locked ones (model outputs included)."""
    heads = {graph.find(e) for e in graph.heads}
    locked = {graph.find(e) for e in graph.locked | graph.outputs}
    locked |= {r for r in (graph.find(e) for e in graph.interface) if r not in heads}
    by_root: dict[int, Unit] = {}
    for key, labels in graph.slots.items():
        for i, e in enumerate(labels.tolist()):
            r = graph.find(e)
            unit = by_root.get(r)
            if unit is None:
                unit = by_root[r] = Unit(r, [], "heads" if r in heads else "channels")
            unit.positions.append((key, i))
    units = sorted(by_root.values(), key=lambda u: u.root)
    _assign_groups(units)
    return units, locked


def _assign_groups(units: list[Unit]) -> None:
    """Units sharing a slot belong to one coupled group (e.g. a whole residual stream)."""
    owner: dict[SlotKey, int] = {}
    parent = list(range(len(units)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, u in enumerate(units):
        for key, _ in u.positions:
            j = owner.setdefault(key, i)
            parent[find(i)] = find(j)
    for i, u in enumerate(units):
        u.group = find(i)
