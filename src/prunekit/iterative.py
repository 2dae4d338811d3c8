"""Prune-and-rescore rounds inside one prune call, for a score that declares ``rounds`` > 1 (SynFlow).

No training happens between rounds: the score is recomputed on the already pruned model and the
engine prunes to the next sparsity of an exponential schedule (the kept fraction shrinks by the same
factor every round, Tanaka et al. 2020). Only a single-fraction target (scope ``global`` or ``layer``,
no fixed-sparsity structure, no MAC target) is split into rounds; other targets run once. A round
that fails (a layer collapse found at the end, for example) leaves the model as it was before the call.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import engine
from . import scope as scopes
from .masks import Masks, attach, detach, masked_parameters
from .scores import Score
from .structures import Context, Structure, TensorStructure


def schedule(start: float, final: float, rounds: int) -> list[float]:
    """Sparsities s_1 < … < s_n = ``final``: kept fraction (1 − start)·((1 − final)/(1 − start))^(k/n)."""
    d0, d = 1 - start, 1 - final
    return [1 - d0 * (d / d0) ** (k / rounds) for k in range(1, rounds)] + [final]


def _already_pruned(structure: Structure, ctx: Context, scope: scopes.Scope) -> float:
    """The largest fraction already pruned where the scope compares units (the whole model, or each part)."""
    parts = structure.parts(ctx)
    pruned, sizes = [structure.pruned(p) for p in parts], [p.size for p in parts]
    if isinstance(scope, scopes.Global):
        return sum(pruned) / max(sum(sizes), 1)
    return max((d / n for d, n in zip(pruned, sizes) if n), default=0.0)


def _snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], Masks]:
    masks = Masks({k: m.clone() for k, m in Masks.from_model(model).items()})  # the live buffers change in place
    return {n: p.detach().clone() for n, p in model.named_parameters()}, masks


def _restore(model: nn.Module, saved: tuple[dict[str, torch.Tensor], Masks]) -> None:
    """Put back the parameters and masks of :func:`_snapshot` (masks attached since then are dropped)."""
    values, masks = saved
    for _, module, name in list(masked_parameters(model)):
        detach(module, name)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(values[n])
    masks.apply(model)


def run(structure: Structure, score: Score, scope: scopes.Scope, ctx: Context, sparsity: float | None = None, *,
        compression: float | None = None, macs_reduction: float | None = None, allow_collapse: bool = False,
        check_finite: bool = True, **kwargs: Any) -> Masks:
    """:func:`prunekit.engine.run`, in ``score.rounds`` rounds when the target is one fraction."""
    rounds = getattr(score, "rounds", 1)
    single = (isinstance(scope, (scopes.Global, scopes.Layer)) and structure.sparsity is None
              and macs_reduction is None and kwargs.get("latency_reduction") is None and (compression is None or isinstance(structure, TensorStructure)))
    if rounds <= 1 or not single:
        return engine.run(structure, score, scope, ctx, sparsity, compression=compression, macs_reduction=macs_reduction,
                          allow_collapse=allow_collapse, check_finite=check_finite, **kwargs)
    if compression is not None:
        targets = list({t.qname: t for p in structure.parts(ctx) for t in p.targets}.values())
        sparsity = engine.sparsity_for_compression(ctx.model, targets, compression)
    start = _already_pruned(structure, ctx, scope)
    steps = schedule(start, sparsity, rounds) if sparsity > start else [sparsity]
    saved = _snapshot(ctx.model)
    try:
        for k, s in enumerate(steps, 1):
            last = k == len(steps)
            masks = engine.run(structure, score, scope, ctx, s, allow_collapse=allow_collapse or not last,
                               check_finite=check_finite and k == 1, **kwargs)
    except BaseException:
        _restore(ctx.model, saved)
        raise
    return masks
