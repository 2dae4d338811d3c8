"""Scopes: where scores are compared, and the exact selection of the units to drop.

A scope never computes importance: it receives parts (one parameter, or one coupled group of
channels; see :class:`prunekit.structures.Part`), each with a function returning its unit scores,
and returns per-part boolean ``keep`` vectors with exactly ``round(sparsity × N)`` units dropped.
Ties are broken deterministically: at equal score, the earlier part and lower index go first.
A part's ``cap`` (no layer emptied, ``max_ratio``, units that cannot be ranked) bounds what it
loses: a global ranking then takes the next-lowest units elsewhere, so the count stays exact
unless the caps together forbid it.

The exact selection over chunked scores, in bounded memory, lives in :mod:`prunekit.selection`.
"""
from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from .errors import InvalidSparsityError, UnknownNameError
from .names import specificity
from .registry import Registry
from .selection import count, keep_lowest_dropped, nan_scores

if TYPE_CHECKING:
    from .structures import Part

def check_ratio(ratio: Any, what: str) -> float:
    """A sparsity or per-layer ratio as a float in [0, 1), or a clear error."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or math.isnan(ratio) or not 0 <= ratio < 1:
        raise InvalidSparsityError(f"{what} must be in [0, 1) (got {ratio!r}); it is the final fraction pruned, a number")
    return float(ratio)


def _cap(part: "Part") -> int:
    return part.size if part.cap is None else max(0, min(part.cap, part.size))


def drop_lowest(parts: Sequence["Part"], k: int) -> list[torch.Tensor]:
    """Per-part ``keep`` vectors dropping the ``k`` lowest scores over all parts, each part within its cap.

    Parts whose cap binds lose exactly their cap lowest units and leave the ranking; the rest is ranked
    again for what remains of ``k`` (the greedy choice of a partition matroid, so exact and optimal).
    """
    keeps: list[torch.Tensor | None] = [None] * len(parts)
    active = list(range(len(parts)))
    while True:
        k = min(k, sum(_cap(parts[i]) for i in active))
        got = keep_lowest_dropped([parts[i].unit_scores for i in active], [parts[i].size for i in active], k)
        over = [i for i, g in zip(active, got) if parts[i].cap is not None and int((~g).sum()) > _cap(parts[i])]
        if not over:
            for i, g in zip(active, got):
                keeps[i] = g
            return keeps
        for i in over:
            keeps[i] = keep_lowest_dropped([parts[i].unit_scores], [parts[i].size], _cap(parts[i]))[0]
            k -= _cap(parts[i])
            active.remove(i)


class Scope(ABC):
    """Decides which units go, given parts with unit scores (already-pruned units score −inf)."""

    needs_sparsity = True

    @abstractmethod
    def select(self, parts: Sequence["Part"], sparsity: float | None) -> list[torch.Tensor]:
        ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


registry: Registry[Scope] = Registry("scope", Scope)
register = registry.register


@register("global")
class Global(Scope):
    """One ranking over all parts: a single threshold for the whole model."""

    def select(self, parts, sparsity):
        return drop_lowest(parts, count(sparsity, sum(p.size for p in parts)))


@register("layer")
class Layer(Scope):
    """The same fraction in every part (every prunable tensor, or every coupled channel group)."""

    def select(self, parts, sparsity):
        return [drop_lowest([p], count(sparsity, p.size))[0] for p in parts]


class PerLayer(Scope):
    """Custom per-layer ratios: ``{"classifier": 0.9, "fc1.weight": 0.5, "conv*": 0.3, nn.Conv2d: 0.2}``.

    Keys are :mod:`prunekit.names` rules: a module name covers its submodules, a parameter's qualified
    name, a glob or a type. When several keys match a part the most specific wins (parameter name,
    then module name, then the nearest ancestor, then globs, then types; ties go to the earlier key).
    Parts no key matches get ``default`` (or the ``sparsity`` passed to prune, if None). A key that
    matches no prunable part raises :class:`UnknownNameError` with the closest names.
    """

    def __init__(self, ratios: Mapping[Any, float], default: float | None = 0.0):
        self.ratios = {k: check_ratio(v, f"the ratio for {k!r}") for k, v in dict(ratios).items()}
        self.default = default
        self.needs_sparsity = default is None

    def ratio(self, part: "Part", sparsity: float | None) -> float:
        """This part's ratio: the most specific matching key's, else the default."""
        best, key = None, None
        for k in self.ratios:
            for mname, module, pname in part.modules:
                rank = specificity(k, mname, module, pname)
                if rank is not None and (best is None or rank > best):
                    best, key = rank, k
        if key is not None:
            return self.ratios[key]
        return sparsity if self.default is None else self.default

    def select(self, parts, sparsity):
        for k in self.ratios:
            if not any(specificity(k, m, mod, pn) is not None for p in parts for m, mod, pn in p.modules):
                names = sorted({n for p in parts for n in [p.name, *(m for m, _, _ in p.modules)] if n})
                close = difflib.get_close_matches(str(k), names, n=5, cutoff=0.5)
                raise UnknownNameError(
                    f"scope key {k!r} matches no prunable layer (check the name; excluded layers are not "
                    "prunable, nor output layers that neurons/channels/heads keep whole unless named in "
                    "prune_outputs=)" + (f"; close matches: {', '.join(close)}" if close else
                                            f"; prunable layers: {', '.join(names[:8])}")
                )
        out = []
        for p in parts:
            ratio = check_ratio(self.ratio(p, sparsity), f"the ratio for {p.name!r}")
            out.append(drop_lowest([p], count(ratio, p.size))[0])
        return out

    def __repr__(self) -> str:
        return f"PerLayer({self.ratios!r}, default={self.default!r})"


def keep_per_block(rows: torch.Tensor, n: int) -> torch.Tensor:
    """Per row (one block of M scores), keep the ``n`` highest; at equal score the lower index goes."""
    order = rows.argsort(dim=1, stable=True)  # ascending: the first M - N of each block are dropped
    keep = torch.ones_like(rows, dtype=torch.bool)
    keep.scatter_(1, order[:, : rows.shape[1] - n], False)
    return keep


@register("row")
class Row(Scope):
    """The same fraction of every output row (dim 0 of a weight): scores compete only within their row.

    Wanda's comparison group. Each row of C weights loses exactly ``round(sparsity × C)``, so a
    layer loses ``rows × round(sparsity × C)`` (equal to ``round(sparsity × N)`` whenever
    ``sparsity × C`` is whole). Only single weights have rows: ``structure="weights"``. At equal
    score the lower index goes; a row that already lost more raises (masks only remove more).
    """

    def select(self, parts, sparsity):
        return [self._part(p, sparsity) for p in parts]

    @staticmethod
    def _part(part: "Part", sparsity: float) -> torch.Tensor:
        param = part.targets[0].param
        if len(part.targets) != 1 or param.dim() < 2 or part.size != param.numel():
            raise InvalidSparsityError(f"scope='row' ranks single weights within each output row of {part.name}; "
                                       "use it with structure='weights'")
        cols = param[0].numel()
        drop = count(sparsity, cols)
        keeps, pending = [], torch.empty(0)
        for chunk in part.unit_scores():
            pending = torch.cat([pending.to(chunk.device), chunk.float()])
            whole = pending.numel() // cols * cols
            rows, pending = pending[:whole].view(-1, cols), pending[whole:]
            if bool(rows.isnan().any()):
                raise nan_scores(part.name)
            if bool((rows.isneginf().sum(1) > drop).any()):
                raise InvalidSparsityError(
                    f"{part.name} already has rows with more than {drop} of {cols} weights pruned, more than "
                    f"sparsity {sparsity} asks for; call pk.unprune(model) first to start over"
                )
            keeps.append(keep_per_block(rows, cols - drop).view(-1))
        return torch.cat(keeps)


class BlockLocal(Scope):
    """Keep the N highest scores in every block of M consecutive units (N:M); the sparsity is 1 - N/M.

    At equal score the lower index goes. Already-pruned units (−inf) go first; a block that already
    lost more than M - N cannot be refined to this pattern and raises.
    """

    needs_sparsity = False

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m

    def select(self, parts, sparsity):
        keeps = []
        for p in parts:
            rows = torch.cat([s.float() for s in p.unit_scores()]).view(-1, self.m)
            if bool(rows.isnan().any()):
                raise nan_scores(p.name)
            if bool((rows.isneginf().sum(1) > self.m - self.n).any()):
                raise InvalidSparsityError(
                    f"{p.name} already has blocks with fewer than {self.n} of {self.m} weights kept; "
                    "call pk.unprune(model) first to start over"
                )
            keeps.append(keep_per_block(rows, self.n).view(-1))
        return keeps

    def __repr__(self) -> str:
        return f"BlockLocal({self.n}, {self.m})"
