"""GapReport: the measured output gaps ‖F(x) − F_pruned(x)‖ and what can be said about them.

Samples form a ``[trials, inputs]`` grid. The independent units behind every interval are chosen so
that the intervals are honest: with a deterministic score (one mask) the inputs are the i.i.d. draws;
with a random score the mask draws (trials) are, because inputs within one trial share a mask.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..errors import PruneError
from ..inputs import check_number
from .stats import clopper_pearson, mean_interval

NORMS = ("l2", "linf")


@dataclass(repr=False)
class GapReport:
    """Output gaps of one pruning configuration. ``over`` is ``"inputs"`` or ``"masks"`` (see module doc).

    ``prob_within(eps)`` is P(gap(x) ≤ ε) over inputs for a deterministic score, and
    P(max over the inputs of gap ≤ ε) over mask draws for a random score (the paper's sup-norm event).
    """

    sparsity: float | Mapping[str, float]
    achieved: float
    score: str
    over: str
    l2: torch.Tensor
    linf: torch.Tensor
    ref_l2: torch.Tensor
    ref_linf: torch.Tensor
    confidence: float = 0.95
    layers: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A few readable lines (not the sample tensors): what was pruned and the gap's statistics."""
        mean, low, high = self.mean_sq_interval()
        target = self.sparsity if isinstance(self.sparsity, (int, float)) else f"{len(self.sparsity)} per-layer ratios"
        return (f"GapReport(score={self.score}, sparsity={target}, achieved {self.achieved:.4f}; "
                f"{self.n_inputs} inputs × {self.trials} mask draws, intervals over {self.over})\n"
                f"  E‖Δy‖² = {mean:.4g}  [{low:.4g}, {high:.4g}] ({100 * self.confidence:g}%)\n"
                f"  ‖Δy‖: median {self.quantile(0.5):.4g}, q90 {self.quantile(0.9):.4g}, sup {self.sup():.4g}")

    __str__ = __repr__

    @property
    def trials(self) -> int:
        return self.l2.shape[0]

    @property
    def n_inputs(self) -> int:
        return self.l2.shape[1]

    def values(self, norm: str = "l2", relative: bool = False) -> torch.Tensor:
        """The ``[trials, inputs]`` gaps in ``norm`` ("l2" or "linf"), absolute or divided by ‖F(x)‖."""
        if norm not in NORMS:
            raise PruneError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        gap = self.l2 if norm == "l2" else self.linf
        if not relative:
            return gap
        ref = self.ref_l2 if norm == "l2" else self.ref_linf
        return gap / ref.clamp_min(torch.finfo(ref.dtype).tiny)

    def _units(self, values: torch.Tensor) -> list[float]:
        """Independent samples of a per-(trial, input) quantity: per-trial means for random masks."""
        return (values.mean(1) if self.over == "masks" else values.reshape(-1)).tolist()

    @property
    def mean_sq(self) -> float:
        """The estimate of E‖Δy‖² (squared L2 gap, averaged over inputs and mask draws)."""
        return float(self.l2.double().pow(2).mean())

    def mean_sq_interval(self, relative: bool = False, confidence: float | None = None) -> tuple[float, float, float]:
        """``(estimate, low, high)`` of E‖Δy‖² (or of E[(‖Δy‖/‖y‖)²]), a Student t interval."""
        values = self.values("l2", relative).double().pow(2)
        return mean_interval(self._units(values), confidence or self.confidence)

    def quantile(self, q: float, norm: str = "l2", relative: bool = False) -> float:
        """The ``q``-quantile of the gap over all (trial, input) samples."""
        check_number(q, "q", low=0, high=1)
        return float(torch.quantile(self.values(norm, relative).double().reshape(-1), q))

    def sup(self, norm: str = "l2", relative: bool = False) -> float:
        """The largest gap seen over all inputs and mask draws."""
        return float(self.values(norm, relative).max())

    def prob_within(
        self, eps: float, norm: str = "l2", relative: bool = False, confidence: float | None = None
    ) -> tuple[float, float, float]:
        """``(p̂, low, high)``: P(gap ≤ ε) with its Clopper–Pearson interval (events as in the class doc)."""
        check_number(eps, "eps", low=0, low_open=True)
        if confidence is not None:
            check_number(confidence, "confidence", low=0, high=1, low_open=True, high_open=True)
        values = self.values(norm, relative)
        ok = values.amax(1) <= eps if self.over == "masks" else (values <= eps).reshape(-1)
        return clopper_pearson(int(ok.sum()), ok.numel(), confidence or self.confidence)

    def summary(self, eps: float | None = None, norm: str = "l2", relative: bool = False) -> dict[str, Any]:
        """A flat dict for tables and JSON: sparsity, E‖Δy‖² with its interval, quantiles, sup, P(gap ≤ ε)."""
        mean, low, high = self.mean_sq_interval()
        rel = self.mean_sq_interval(relative=True)[0]
        out: dict[str, Any] = {
            "score": self.score, "sparsity": self.achieved, "trials": self.trials, "inputs": self.n_inputs,
            "mean_sq": mean, "mean_sq_low": low, "mean_sq_high": high, "rel_mean_sq": rel,
            "q50": self.quantile(0.5, norm, relative), "q90": self.quantile(0.9, norm, relative),
            "q99": self.quantile(0.99, norm, relative), "sup": self.sup(norm, relative),
        }
        if eps is not None:
            out["eps"] = eps
            out["p_within"], out["p_low"], out["p_high"] = self.prob_within(eps, norm, relative)
        return out
