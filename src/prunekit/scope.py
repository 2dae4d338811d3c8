"""Scopes: where scores are compared, and the exact selection of the units to drop.

A scope never computes importance: it receives, per tensor, a function returning unit scores, and
returns per-tensor boolean ``keep`` vectors with exactly ``round(sparsity × N)`` units dropped.
Ties are broken deterministically: at equal score, the earlier tensor and lower index go first.

Selection never concatenates all scores: it finds the k-th smallest score from a sample-bracketed
candidate set, so peak extra memory is one tensor's scores plus the boolean masks.
"""
from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from typing import Callable, Mapping, Sequence

import torch

from .errors import InvalidSparsityError
from .registry import Registry

ScoreFn = Callable[[], torch.Tensor]
_SAMPLE = 1 << 16


def _kth_smallest(fns: Sequence[ScoreFn], sizes: Sequence[int], k: int) -> tuple[float, int]:
    """The k-th smallest score (1-based) over all tensors, and how many scores lie strictly below it."""
    total = sum(sizes)
    lo, hi = -math.inf, math.inf
    if total > 4 * _SAMPLE:  # bracket the k-th value by quantiles of a fixed-seed sample
        gen = torch.Generator().manual_seed(0)
        sample = []
        for fn, n in zip(fns, sizes):
            m = max(1, round(_SAMPLE * n / total)) if n else 0
            if m:
                sample.append(fn()[torch.randint(n, (m,), generator=gen)].float().cpu())
        sample = torch.cat(sample).sort().values
        slack = 4.0 * math.sqrt(len(sample)) + 1
        i_lo, i_hi = math.floor(k / total * len(sample) - slack), math.ceil(k / total * len(sample) + slack)
        lo = sample[i_lo].item() if i_lo >= 0 else -math.inf
        hi = sample[i_hi].item() if i_hi < len(sample) else math.inf
    while True:
        below, cand = 0, []
        for fn in fns:
            s = fn()
            below += int((s < lo).sum()) if lo > -math.inf else 0
            inside = (s >= lo) & (s <= hi)
            cand.append(s[inside].cpu())
        cand = torch.cat(cand)
        if below < k <= below + cand.numel():
            value = cand.kthvalue(k - below).values.item()
            return value, below + int((cand < value).sum())
        # The sample missed (rare): widen the bracket on the side where the k-th value lies.
        lo, hi = (-math.inf, lo) if k <= below else (hi, math.inf)


def keep_lowest_dropped(fns: Sequence[ScoreFn], sizes: Sequence[int], k: int) -> list[torch.Tensor]:
    """Per-tensor ``keep`` vectors that drop exactly the ``k`` lowest scores across all tensors."""
    total = sum(sizes)
    if not 0 <= k <= total:
        raise InvalidSparsityError(f"cannot drop {k} of {total} units")
    if k == 0:
        return [torch.ones(n, dtype=torch.bool) for n in sizes]
    value, below = _kth_smallest(fns, sizes, k)
    ties = k - below  # how many scores equal to the k-th value are dropped, in tensor/index order
    keeps = []
    for fn in fns:
        s = fn()
        keep = s > value
        equal = (s == value).nonzero().squeeze(1)
        keep[equal[ties:]] = True  # ties beyond the budget stay
        ties -= min(ties, equal.numel())
        keeps.append(keep)
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
