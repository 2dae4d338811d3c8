"""Confidence intervals for the gap estimates: Clopper–Pearson for probabilities, Student t for means.

Both come from scipy's beta and t quantiles, so the intervals are exact (binomial) or standard (t)
rather than normal approximations that fail near p = 1, exactly where pruning guarantees live.
"""
from __future__ import annotations

import math
from typing import Sequence

from scipy import stats as _st

from ..errors import PruneError


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise PruneError(f"confidence must be in (0, 1) (got {confidence!r}); 0.95 is the usual choice")
    return float(confidence)


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(p̂, low, high)``: the two-sided Clopper–Pearson interval for a binomial proportion.

    ``low``/``high`` are quantiles of Beta(k, n−k+1) and Beta(k+1, n−k) at (1 ∓ confidence)/2; the
    interval covers the true p with probability at least ``confidence`` for every p (it is exact).
    """
    if n <= 0 or not 0 <= successes <= n:
        raise PruneError(f"need 0 <= successes <= n and n > 0 (got {successes} of {n})")
    alpha = 1.0 - _check_confidence(confidence)
    low = 0.0 if successes == 0 else float(_st.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(_st.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return successes / n, low, high


def min_samples(prob: float, confidence: float = 0.95) -> int:
    """The fewest samples whose Clopper–Pearson lower end can reach ``prob`` (all samples successes)."""
    alpha = 1.0 - _check_confidence(confidence)
    # With k = n the lower end is (alpha/2)^(1/n); it reaches prob once n >= log(alpha/2) / log(prob).
    return 1 if prob <= 0 else math.ceil(math.log(alpha / 2) / math.log(prob))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student t interval for the mean of independent ``values``."""
    n = len(values)
    if n == 0:
        raise PruneError("cannot estimate a mean from zero samples")
    mean = sum(values) / n
    if n == 1:
        return mean, -math.inf, math.inf
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = float(_st.t.ppf(0.5 + _check_confidence(confidence) / 2, n - 1)) * math.sqrt(var / n)
    return mean, mean - half, mean + half
