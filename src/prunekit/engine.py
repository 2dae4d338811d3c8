"""The one pruning engine: structure → score → scope → masks, the same for every structure.

``run`` takes resolved objects (``prunekit.api.prune`` turns names into them): the structure cuts the
model into parts, the score is prepared once and scores units lazily, chunk by chunk, the scope picks
exactly the units to drop (within each part's cap), ``round_to`` gives back the best dropped units
of a part, and the structure turns keep vectors into masks (``masks.attach``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

from . import collapse
from . import scope as scopes
from .errors import InvalidSparsityError, MissingDataError, NonFiniteWeightsError, PruneError
from .latency import for_latency
from .masks import Masks
from .scores import Score, Target
from .structures import Context, Part, Structure, TensorStructure
from .threads import cores_busy, one_thread


def _finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in ``t``: one reduction, with an exact check only if the sum overflows."""
    return bool(torch.isfinite(t.detach().sum())) or bool(torch.isfinite(t).all())


def sparsity_for_compression(model: nn.Module, targets: list[Target], compression: float) -> float:
    """The prunable fraction that makes all parameters / nonzero parameters equal ``compression``.

    Non-prunable parameters stay as they are (ShrinkBench's convention; their zeros, such as a fresh
    BatchNorm bias, count as zeros), so high ratios may be unreachable.
    """
    if not compression >= 1:
        raise InvalidSparsityError(f"compression must be >= 1 (got {compression})")
    params = list({id(p): p for p in model.parameters()}.values())
    prunable_ids = {id(t.param) for t in targets}
    total = sum(p.numel() for p in params)
    prunable_n = sum(t.param.numel() for t in targets)
    other_nonzero = sum(int(torch.count_nonzero(p)) for p in params if id(p) not in prunable_ids)
    fraction = 1 - (total / compression - other_nonzero) / prunable_n
    if fraction >= 1:
        limit = total / max(other_nonzero, 1)
        raise InvalidSparsityError(
            f"compression {compression} is unreachable: with {other_nonzero} nonzero parameters left dense "
            f"the highest possible is {limit:.2f}; lower it or prune more layer types"
        )
    return max(fraction, 0.0)


def run(
    structure: Structure,
    score: Score,
    scope: scopes.Scope,
    ctx: Context,
    sparsity: float | None = None,
    *,
    compression: float | None = None,
    macs_reduction: float | None = None,
    data: Any = None,
    loss_fn: Callable | None = None,
    check_finite: bool = True,
    allow_collapse: bool = False,
    latency_reduction: float | None = None,
) -> Masks:
    """Prune ``ctx.model`` in place with resolved parts; see :func:`prunekit.prune` for the meaning."""
    combine = getattr(structure, "combine", None)
    if combine is not None:  # several structures (width and depth): the structure runs the engine per part
        return combine(run, score, scope, ctx, sparsity, macs_reduction=macs_reduction,
                       latency_reduction=latency_reduction, data=data, loss_fn=loss_fn, check_finite=check_finite,
                       allow_collapse=allow_collapse)
    parts = structure.parts(ctx)
    targets = list({t.qname: t for p in parts for t in p.targets}.values())
    if check_finite:
        with one_thread(cores_busy()):  # memory-bound sums: faster on idle cores, slower on busy ones
            bad = next((t for t in targets if not _finite(t.param)), None)
        if bad is not None:
            raise NonFiniteWeightsError(
                f"{bad.qname} holds NaN or infinite values; fix the weights or pass check_finite=False"
            )
    if compression is not None:
        if not isinstance(structure, TensorStructure):
            raise PruneError(f"structure={structure.name!r} takes sparsity= or macs_reduction=, not compression=")
        sparsity = sparsity_for_compression(ctx.model, targets, compression)
    if score.needs_example_inputs and ctx.example_inputs is None:
        raise MissingDataError(f"score {score.name!r} needs example_inputs= (a batch of inputs)")
    score.plan(parts, structure, scope, sparsity)  # a score that prunes as it scores (SparseGPT) reads the scope
    if score.needs_example_inputs and (data is None or score.data_free):  # SynFlow reads the example inputs
        data = ctx.example_inputs
    ctx.state = score.prepare(ctx.model, targets, data, loss_fn)
    for p in parts:
        p.unit_scores = functools.partial(structure.scores, p, score, ctx)
        sample = structure.sampler(p, score, ctx)
        if sample is not None:  # selection.SampledScoreFn: brackets the threshold without a full pass
            p.unit_scores.sample = sample
    structure.prepare(parts, score, ctx)
    _check_monotone(structure, parts, scope, sparsity)
    if latency_reduction is not None:  # timed on all threads, as the model will run
        keeps, _ = for_latency(structure, parts, _selector(parts, scope), latency_reduction, ctx.model,
                               ctx.example_inputs)
    else:
        with one_thread(cores_busy()):  # chunked selection: many small memory-bound ops
            keeps = for_macs(structure, parts, scope, macs_reduction) if macs_reduction is not None \
                else scope.select(parts, sparsity)
            keeps = [rounded(p, keep) for p, keep in zip(parts, keeps)]
    collapse.check(parts, keeps, allow_collapse)  # before any mask: a refused prune changes nothing
    for p, keep in zip(parts, keeps):
        structure.apply(p, keep)
    return Masks.from_model(ctx.model)


def _selector(parts: list[Part], scope: scopes.Scope) -> Callable[[int], list[torch.Tensor]]:
    """Keep vectors (rounded) when the scope drops ``k`` units in all: what MAC and latency targets bisect on."""
    if not isinstance(scope, (scopes.Global, scopes.Layer)):
        raise PruneError("macs_reduction= and latency_reduction= rank with scope='global' or 'layer'")
    n = sum(p.size for p in parts)
    return lambda k: [rounded(p, keep) for p, keep in zip(parts, scope.select(parts, k / n))]


def rounded(part: Part, keep: torch.Tensor) -> torch.Tensor:
    """Give back a part's highest-scoring dropped units until its kept width is a multiple of ``round_to``."""
    if part.round_to == 1:
        return keep
    width = part.width or part.size
    dropped = (~keep).nonzero().squeeze(1)
    back = min((-(width - dropped.numel())) % part.round_to, dropped.numel())
    if back:
        s = torch.cat(list(part.unit_scores()))[dropped]
        order = torch.argsort(s, stable=True)  # ascending (score, index): give back from the end
        keep = keep.clone()
        keep[dropped[order[-back:]]] = True
    return keep


def for_macs(structure: Structure, parts: list[Part], scope: scopes.Scope, target: float) -> list[torch.Tensor]:
    """The fewest dropped units (by the scope's ranking) whose dense / remaining MACs reach ``target``."""
    macs = getattr(structure, "macs", None)
    if macs is None:
        raise PruneError(f"macs_reduction= needs a structure that counts MACs (channels, heads), not {structure.name!r}")
    if not isinstance(scope, (scopes.Global, scopes.Layer)):
        raise PruneError("macs_reduction= ranks with scope='global' or 'layer'")
    if not target >= 1:
        raise InvalidSparsityError(f"macs_reduction must be >= 1 (got {target})")
    dense, n, select = macs(parts), sum(p.size for p in parts), _selector(parts, scope)

    def reduction(k: int) -> tuple[float, list[torch.Tensor]]:
        keeps = select(k)
        return dense / max(macs(parts, keeps), 1), keeps

    best, keeps = reduction(n)
    if best < target:
        raise InvalidSparsityError(
            f"macs_reduction={target} is unreachable: removing every prunable unit the guard and "
            f"max_ratio allow gives {best:.2f}x; lower the target"
        )
    lo, hi = 0, n  # bisect on the number of units dropped
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got, mid_keeps = reduction(mid)
        if got >= target:
            hi, keeps = mid, mid_keeps
        else:
            lo = mid
    return keeps


def _check_monotone(structure: Structure, parts: list[Part], scope: scopes.Scope, sparsity: float | None) -> None:
    """Refuse a target below what is already pruned: masks never grow back."""
    if sparsity is None or not isinstance(scope, (scopes.Global, scopes.Layer)):
        return
    pruned = [structure.pruned(p) for p in parts]
    sizes = [p.size for p in parts]
    groups = [(sum(pruned), sum(sizes))] if isinstance(scope, scopes.Global) else zip(pruned, sizes)
    for done, n in groups:
        if done > scopes.count(sparsity, n):
            raise InvalidSparsityError(
                f"the model already has {done}/{n} units pruned, more than sparsity {sparsity} asks for; "
                "masks only remove more — call pk.unprune(model) first to start over"
            )

