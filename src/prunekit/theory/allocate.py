"""max_sparsity: how far each layer (or the whole model) can be pruned while P(gap ≤ ε) ≥ 1 − δ.

A sparsity counts as safe when the lower end of the Clopper–Pearson interval of P(gap ≤ ε) is at
least 1 − δ. Bisection runs on a fixed grid (j / 2^steps, or a path that does not depend on ε or δ)
with the same inputs and mask seeds for every call, so a larger ε or δ never gives a smaller answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..api import prunable
from ..errors import InsufficientSamplesError, PruneError
from .gap import Evaluator
from .report import GapReport
from .stats import min_samples

# joint=True measures per-layer cost curves at sparsities 1 − 2^(−j/4), j = 0..32 (0 to 0.996): the
# steps in kept weights are geometric, so the grid is as fine at 95 % sparsity as it is at 20 %.
JOINT_GRID = tuple(1 - 2 ** (-j / 4) for j in range(33))


@dataclass(repr=False)
class Allocation:
    """The answer of :func:`max_sparsity`.

    ``ratios`` maps every prunable weight to its sparsity and goes straight to
    ``pk.prune(model, score=..., scope=allocation.ratios)``. ``mode`` is "layer" (each layer's own
    limit), "joint" or "global". ``reports`` holds the gap at each layer's ratio with that layer
    pruned alone; ``joint`` the gap with all layers pruned together, which meets the target in the
    "joint" and "global" modes but not, in general, in the "layer" mode, where the gaps add up.
    """

    ratios: dict[str, float]
    sparsity: float
    eps: float
    delta: float
    mode: str
    joint: GapReport
    reports: dict[str, GapReport] = field(default_factory=dict)
    norm: str = "l2"
    relative: bool = False

    def __repr__(self) -> str:
        """A readable summary: the target, the per-layer ratios with P(gap ≤ ε), and the joint result."""
        p, low, high = self.joint.prob_within(self.eps, self.norm, self.relative)
        gap = f"{'relative ' if self.relative else ''}{self.norm} gap"
        lines = [f"Allocation(mode={self.mode}: P({gap} ≤ {self.eps:g}) ≥ {1 - self.delta:g}; "
                 f"overall sparsity {self.sparsity:.4f})",
                 f"  {'layer':<24} sparsity  P(gap ≤ ε) alone [interval]"]
        for row in self.table():
            lines.append(f"  {row['layer']:<24} {row['sparsity']:8.4f}  {row['p_within']:.3f} "
                         f"[{row['p_low']:.3f}, {row['p_high']:.3f}]")
        lines.append(f"  all layers together: P(gap ≤ ε) = {p:.3f} [{low:.3f}, {high:.3f}]")
        return "\n".join(lines)

    __str__ = __repr__

    def table(self) -> list[dict[str, Any]]:
        """One row per layer: name, chosen sparsity, and P(gap ≤ ε) with its interval (layer alone)."""
        rows = []
        for name, ratio in self.ratios.items():
            rep = self.reports.get(name, self.joint)
            p, low, high = rep.prob_within(self.eps, self.norm, self.relative)
            rows.append({"layer": name, "sparsity": ratio, "p_within": p, "p_low": low, "p_high": high})
        return rows


def _largest_index(feasible: Callable[[int], bool], n: int) -> int:
    """The largest index in [0, n) that bisection finds feasible, given index 0 is."""
    lo, hi = 0, n - 1
    if feasible(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if feasible(mid) else (lo, mid)
    return lo


def _largest(feasible: Callable[[float], bool], steps: int) -> float:
    """The largest j / 2^steps (j < 2^steps) that bisection finds feasible, given 0 is."""
    grid = 1 << steps
    return _largest_index(lambda j: feasible(j / grid), grid) / grid


def _greedy_path(
    costs: Mapping[str, Sequence[float]], sizes: Mapping[str, int], grid: Sequence[float]
) -> list[dict[str, float]]:
    """Allocations from dense to every layer at ``grid[-1]``, one grid step of one layer at a time.

    Each step raises the layer whose next step adds the least cost per weight removed: the
    marginal-cost rule of a sensitivity-based allocation, with costs measured one layer at a time.
    """
    at = dict.fromkeys(costs, 0)
    path = [{k: grid[0] for k in costs}]
    while True:
        open_ = [k for k in costs if at[k] < len(grid) - 1]
        if not open_:
            return path

        def per_weight(k: str) -> float:
            j = at[k]
            return (costs[k][j + 1] - costs[k][j]) / ((grid[j + 1] - grid[j]) * sizes[k])

        k = min(open_, key=per_weight)
        at[k] += 1
        path.append({name: grid[j] for name, j in at.items()})


def max_sparsity(
    model: nn.Module,
    inputs: torch.Tensor | str = "gaussian",
    *,
    eps: float,
    delta: float,
    per_layer: bool = True,
    joint: bool = False,
    score: Any = "magnitude",
    norm: str = "l2",
    relative: bool = False,
    steps: int = 8,
    exclude: Any = (),
    **gap_options: Any,
) -> Allocation:
    """The largest sparsity per layer (or global) with Clopper–Pearson lower end of P(gap ≤ ε) ≥ 1 − δ.

    ``per_layer=True`` prunes one layer at a time, the others dense: each layer's own limit (a
    sensitivity profile; pruned together, the gaps add up). ``joint=True`` instead walks the
    marginal-cost path built from each layer's mean squared gap on :data:`JOINT_GRID` and bisects it
    for the largest allocation whose *joint* gap meets the target. ``per_layer=False`` searches one
    model-wide sparsity (scope from ``gap_options``, default global). ``norm``/``relative`` choose
    the gap (see :class:`GapReport`); other keyword arguments (``trials``, ``n_inputs``, ``rescale``,
    ``seed``, ``confidence``...) go to the estimator. Resolution is 2^-steps.
    """
    if not eps > 0:
        raise PruneError(f"eps must be positive (got {eps!r}): it is the largest acceptable output gap")
    if not 0 < delta < 1:
        raise PruneError(f"delta must be in (0, 1) (got {delta!r}): the allowed probability of exceeding eps")
    if not 1 <= steps <= 20:
        raise PruneError(f"steps must be in [1, 20] (got {steps}); the resolution is 2**-steps")
    evaluate = Evaluator(model, inputs, score=score, exclude=exclude, **gap_options)
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

    def ok(report: GapReport) -> bool:
        return report.prob_within(eps, norm, relative)[1] >= 1 - delta

    targets = prunable(model, exclude)
    if not per_layer:
        joint_report = at(None, _largest(lambda s: ok(at(None, s)), steps))
        ratios = dict(joint_report.layers)
    elif joint:
        costs = {t.qname: [float(at(t.qname, r).values(norm, relative).double().pow(2).mean()) for r in JOINT_GRID]
                 for t in targets}
        path = _greedy_path(costs, {t.qname: t.param.numel() for t in targets}, JOINT_GRID)
        on_path: dict[int, GapReport] = {}

        def path_ok(i: int) -> bool:
            on_path[i] = evaluate(path[i])
            return ok(on_path[i])

        best = _largest_index(path_ok, len(path))
        ratios, joint_report = path[best], on_path.get(best) or evaluate(path[best])
    else:
        ratios = {t.qname: _largest(lambda s, q=t.qname: ok(at(q, s)), steps) for t in targets}
        joint_report = evaluate(ratios)
    reports = {name: at(name, r) for name, r in ratios.items()} if per_layer else {}
    mode = "global" if not per_layer else "joint" if joint else "layer"
    return Allocation(ratios, joint_report.achieved, eps, delta, mode, joint_report, reports, norm, relative)
