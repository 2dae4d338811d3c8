"""Scopes: where scores are compared, and the exact selection of the units to drop.

A scope never computes importance: it receives, per tensor, a function returning unit scores, and
returns per-tensor boolean ``keep`` vectors with exactly ``round(sparsity × N)`` units dropped.
Ties are broken deterministically: at equal score, the earlier tensor and lower index go first.

Selection never holds all scores at once: scores arrive in chunks, and the k-th smallest is found
in a candidate set bracketed by a sample, so peak extra memory is about the boolean masks alone.
"""
from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Mapping, Sequence

import torch

from .errors import InvalidSparsityError
from .registry import Registry

ScoreFn = Callable[[], Iterable[torch.Tensor]]  # one tensor's unit scores, as 1-D chunks in order
_SAMPLE = 1 << 16


def _kth_smallest(fns: Sequence[ScoreFn], sizes: Sequence[int], k: int) -> tuple[float, int, int]:
    """The k-th smallest score (1-based) over all tensors, how many lie strictly below it, how many equal it.

    Buffers are allocated once up front and filled chunk by chunk: small pieces kept alive between
    large freed temporaries would fragment the heap and hold on to memory.
    """
    total = sum(sizes)
    lo, hi, capacity = -math.inf, math.inf, total
    if total > 4 * _SAMPLE:  # bracket the k-th value by quantiles of a fixed-seed sample
        gen = torch.Generator().manual_seed(0)
        sample, n = torch.empty(_SAMPLE), 0
        for fn in fns:
            for s in fn():
                m = _SAMPLE * s.numel() // total
                sample[n : n + m] = s[torch.randint(s.numel(), (m,), generator=gen).to(s.device)].cpu()
                n += m
        sample = sample[:n].sort().values
        slack = 4.0 * math.sqrt(n) + 1
        i_lo, i_hi = math.floor(k / total * n - slack), math.ceil(k / total * n + slack)
        lo = sample[i_lo].item() if i_lo >= 0 else -math.inf
        hi = sample[i_hi].item() if i_hi < n else math.inf
        capacity = min(total, 2 * total * (i_hi - i_lo + 2) // n + 4096)
    while True:
        below, cand, filled = 0, None, 0
        for fn in fns:
            for s in fn():
                if cand is None:
                    cand = torch.empty(capacity, dtype=s.dtype)
                if lo > -math.inf:
                    below += int(torch.count_nonzero(s < lo))
                inside = s >= lo
                inside &= s <= hi
                piece = s[inside]
                if filled + piece.numel() <= capacity:
                    cand[filled : filled + piece.numel()] = piece.cpu()
                filled += piece.numel()
        if filled > capacity:  # far more candidates than the sample suggested: take them all
            lo, hi, capacity = -math.inf, math.inf, total
            continue
        cand = cand[:filled]
        if below < k <= below + filled:
            value = cand.kthvalue(k - below).values.item()
            return value, below + int(torch.count_nonzero(cand < value)), int(torch.count_nonzero(cand == value))
        # The sample missed (rare): widen the bracket on the side where the k-th value lies.
        lo, hi, capacity = (-math.inf, lo, total) if k <= below else (hi, math.inf, total)


def keep_lowest_dropped(fns: Sequence[ScoreFn], sizes: Sequence[int], k: int) -> list[torch.Tensor]:
    """Per-tensor ``keep`` vectors that drop exactly the ``k`` lowest scores across all tensors."""
    total = sum(sizes)
    if not 0 <= k <= total:
        raise InvalidSparsityError(f"cannot drop {k} of {total} units")
    if k == 0:
        return [torch.ones(n, dtype=torch.bool) for n in sizes]
    value, below, equal_total = _kth_smallest(fns, sizes, k)
    ties = k - below  # how many scores equal to the k-th value are dropped, in tensor/index order
    keeps = []
    for fn, n in zip(fns, sizes):
        keep, offset = None, 0
        for s in fn():
            if keep is None:
                keep = torch.empty(n, dtype=torch.bool, device=s.device)
            part = torch.gt(s, value, out=keep[offset : offset + s.numel()])
            if ties < equal_total:  # only some of the tied scores go: the earliest ones
                equal = (s == value).nonzero().squeeze(1)
                part[equal[ties:]] = True
                ties -= min(ties, equal.numel())
                equal_total -= equal.numel()
            offset += s.numel()
        keeps.append(keep if keep is not None else torch.ones(0, dtype=torch.bool))
    return keeps


def count(sparsity: float, n: int) -> int:
    """The exact number of units a sparsity drops out of ``n``: ``round(sparsity × n)``."""
    return int(round(sparsity * n))


class Scope(ABC):
    """Decides which units go, given per-tensor unit scores (already-pruned units score −inf)."""

    needs_sparsity = True

    @abstractmethod
    def select(
        self, fns: Sequence[ScoreFn], sizes: Sequence[int], names: Sequence[str], sparsity: float | None
    ) -> list[torch.Tensor]:
        ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


registry: Registry[Scope] = Registry("scope", Scope)
register = registry.register


@register("global")
class Global(Scope):
    """One ranking over all prunable tensors: a single threshold for the whole model."""

    def select(self, fns, sizes, names, sparsity):
        return keep_lowest_dropped(fns, sizes, count(sparsity, sum(sizes)))


@register("layer")
class Layer(Scope):
    """The same fraction in every prunable tensor."""

    def select(self, fns, sizes, names, sparsity):
        return [keep_lowest_dropped([fn], [n], count(sparsity, n))[0] for fn, n in zip(fns, sizes)]


class PerLayer(Scope):
    """Custom per-tensor ratios: ``{"fc1.weight": 0.9, "conv*": 0.5}`` (exact names or globs).

    Tensors no pattern matches get ``default`` (or the ``sparsity`` passed to prune, if None).
    """

    def __init__(self, ratios: Mapping[str, float], default: float | None = 0.0):
        self.ratios = dict(ratios)
        self.default = default
        self.needs_sparsity = default is None

    def ratio(self, name: str, sparsity: float | None) -> float:
        for pattern, value in self.ratios.items():
            if name == pattern or name.rpartition(".")[0] == pattern or fnmatch.fnmatchcase(name, pattern):
                return value
        return sparsity if self.default is None else self.default

    def select(self, fns, sizes, names, sparsity):
        out = []
        for fn, n, name in zip(fns, sizes, names):
            ratio = self.ratio(name, sparsity)
            if not 0 <= ratio < 1:
                raise InvalidSparsityError(f"ratio {ratio} for {name!r} is outside [0, 1)")
            out.append(keep_lowest_dropped([fn], [n], count(ratio, n))[0])
        return out

    def __repr__(self) -> str:
        return f"PerLayer({self.ratios!r}, default={self.default!r})"
