"""Measured speedups that are measurements: timed beside a dense twin, with their spread and a noise floor.

Every measurement times three things round-robin in one process (:func:`prunekit.metrics.time_interleaved`):
the dense model, an identical copy of it (the *twin*), and the deployed model. ``dense / twin`` is what
"speedup" reads when nothing changed: across a sweep these ratios give the noise floor, and a speedup
inside it is no effect. A deployed form that computes exactly what the dense model computes (``dense``,
``dense (…)``, ``2:4 (no CPU kernel; dense)``) is 1.00× by construction and is not timed as a
different model.
"""
from __future__ import annotations

import copy
import math
import statistics
from typing import Any, Iterable

import torch
from torch import nn

from ..metrics import time_interleaved

FLOOR_QUANTILE = 0.95  # the noise floor covers this share of dense-vs-dense ratios


def computes_dense(form: str) -> bool:
    """Whether a ``deployed_as`` label means the dense model's own computation (zeros multiplied)."""
    return form == "dense" or form.startswith("dense (") or form.endswith("; dense)")


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def measure(dense: nn.Module, deployed: nn.Module, form: str, x: torch.Tensor, repeats: int,
            warmup: int) -> dict[str, Any]:
    """Latencies of ``dense`` and ``deployed`` on ``x`` and the speedup with its spread.

    Returns ``dense_s``/``dense_min_s``, ``deployed_s``/``deployed_min_s`` (median and min seconds),
    ``speedup`` (median of the per-round dense / deployed ratios, so it lies between its quartiles
    ``speedup_q1``/``speedup_q3``; 1.0 by construction for a dense form), ``noise`` (the same statistic
    for dense / twin) and ``by_construction``.
    """
    by_construction = computes_dense(form)
    models = {"dense": dense, "twin": copy.deepcopy(dense)}
    if not by_construction:
        models["deployed"] = deployed
    for m in models.values():
        m.eval()
    with torch.inference_mode():
        t = time_interleaved({n: (lambda m=m: m(x)) for n, m in models.items()}, repeats, warmup)
    d = t.median["dense"]
    out = {"dense_s": d, "dense_min_s": t.min["dense"], "noise": statistics.median(
               a / b for a, b in zip(t.samples["dense"], t.samples["twin"])),
           "by_construction": by_construction}
    if by_construction:
        return {**out, "deployed_s": d, "deployed_min_s": t.min["dense"], "speedup": 1.0,
                "speedup_q1": 1.0, "speedup_q3": 1.0}
    ratios = [a / b for a, b in zip(t.samples["dense"], t.samples["deployed"])]
    q1, q3 = _quartiles(ratios)
    p = t.median["deployed"]
    return {**out, "deployed_s": p, "deployed_min_s": t.min["deployed"], "speedup": statistics.median(ratios),
            "speedup_q1": q1, "speedup_q3": q3}


def noise_floor(noise_ratios: Iterable[float]) -> float | None:
    """The factor f >= 1 such that :data:`FLOOR_QUANTILE` of dense-vs-dense ratios lie in [1/f, f]
    (nearest rank); None without measurements."""
    folded = sorted(max(r, 1 / r) for r in noise_ratios if r > 0 and math.isfinite(r))
    if not folded:
        return None
    return folded[min(len(folded) - 1, math.ceil(FLOOR_QUANTILE * len(folded)) - 1)]


def above_floor(speedup: float, floor: float | None) -> bool:
    """Whether ``speedup`` is a measured effect: outside [1/floor, floor] (any change counts without a floor)."""
    if floor is None:
        return speedup != 1.0
    return speedup > floor or speedup < 1 / floor
