"""max_sparsity: how far each layer (or the whole model) can be pruned while P(gap ≤ ε) ≥ 1 − δ.

A sparsity counts as safe when the lower end of the Clopper–Pearson interval of P(gap ≤ ε) is at
least 1 − δ. Bisection runs on the fixed dyadic grid j / 2^steps with the same inputs and mask seeds
for every call, so a larger ε or δ can never give a smaller answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..api import prunable
from ..errors import InsufficientSamplesError, PruneError
from .gap import Evaluator
from .report import GapReport
from .stats import min_samples


@dataclass
class Allocation:
    """The answer of :func:`max_sparsity`.

    ``ratios`` maps every prunable weight to its sparsity and goes straight to
    ``pk.prune(model, score=..., scope=allocation.ratios)``. ``reports`` holds the gap at each layer's
    chosen ratio (that layer pruned alone, when ``per_layer``); ``joint`` the gap with all layers
    pruned together, which may exceed ε because per-layer budgets do not add up exactly.
    """

    ratios: dict[str, float]
    sparsity: float
    eps: float
    delta: float
    per_layer: bool
    joint: GapReport
    reports: dict[str, GapReport] = field(default_factory=dict)
    norm: str = "l2"
    relative: bool = False

    def table(self) -> list[dict[str, Any]]:
        """One row per layer: name, size, chosen sparsity, and P(gap ≤ ε) with its interval there."""
        rows = []
        for name, ratio in self.ratios.items():
            rep = self.reports.get(name, self.joint)
            p, low, high = rep.prob_within(self.eps, self.norm, self.relative)
            rows.append({"layer": name, "sparsity": ratio, "p_within": p, "p_low": low, "p_high": high})
        return rows


def _largest(feasible: Callable[[float], bool], steps: int) -> float:
    """The largest j / 2^steps (j < 2^steps) that bisection finds feasible, given 0 is."""
    lo, hi = 0, (1 << steps) - 1
    if feasible(hi / (1 << steps)):
        return hi / (1 << steps)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if feasible(mid / (1 << steps)) else (lo, mid)
    return lo / (1 << steps)


def max_sparsity(
    model: nn.Module,
    inputs: torch.Tensor | str = "gaussian",
    *,
    eps: float,
    delta: float,
    per_layer: bool = True,
    score: Any = "magnitude",
    norm: str = "l2",
    relative: bool = False,
    steps: int = 8,
    exclude: Any = (),
    **gap_options: Any,
) -> Allocation:
    """The largest sparsity per layer (or global) with Clopper–Pearson lower end of P(gap ≤ ε) ≥ 1 − δ.

    ``per_layer=True`` prunes one layer at a time, the others dense, giving a sensitivity-based
    allocation; ``per_layer=False`` searches one model-wide sparsity (scope from ``gap_options``,
    default global). ``norm``/``relative`` choose the gap (see :class:`GapReport`); other keyword
    arguments (``trials``, ``n_inputs``, ``rescale``, ``seed``, ``confidence``...) go to the estimator.
    Resolution is 2^-steps.
    """
    if not eps > 0:
        raise PruneError(f"eps must be positive (got {eps!r}): it is the largest acceptable output gap")
    if not 0 < delta < 1:
        raise PruneError(f"delta must be in (0, 1) (got {delta!r}): the allowed probability of exceeding eps")
    if not 1 <= steps <= 20:
        raise PruneError(f"steps must be in [1, 20] (got {steps}); the resolution is 2**-steps")
    evaluate = Evaluator(model, inputs, score=score, prune_options={"exclude": exclude}, **gap_options)
    first = evaluate(0.0)
    n = first.trials if first.over == "masks" else first.trials * first.n_inputs
    if first.prob_within(eps, norm, relative)[1] < 1 - delta:
        need = min_samples(1 - delta, evaluate.confidence)
        unit = "mask draws (trials)" if first.over == "masks" else "inputs"
        raise InsufficientSamplesError(
            f"with {n} {unit} the confidence bound cannot reach 1 - delta = {1 - delta:g}; "
            f"use at least {need} {unit} or a larger delta"
        )

    seen: dict[tuple[str | None, float], GapReport] = {}

    def at(name: str | None, s: float) -> GapReport:
        """The gap with layer ``name`` (or, for None, the model) pruned to ``s``; each point measured once."""
        if (name, s) not in seen:
            seen[name, s] = evaluate(s if name is None else {name: s})
        return seen[name, s]

    def feasible(name: str | None) -> Callable[[float], bool]:
        return lambda s: at(name, s).prob_within(eps, norm, relative)[1] >= 1 - delta

    reports: dict[str, GapReport] = {}
    if per_layer:
        ratios = {}
        for t in prunable(model, exclude):
            ratios[t.qname] = _largest(feasible(t.qname), steps)
            reports[t.qname] = at(t.qname, ratios[t.qname])
        joint = evaluate(ratios)
    else:
        joint = at(None, _largest(feasible(None), steps))
        ratios = dict(joint.layers)
    return Allocation(ratios, joint.achieved, eps, delta, per_layer, joint, reports, norm, relative)
