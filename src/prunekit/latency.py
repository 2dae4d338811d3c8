"""Measured latency as a pruning target: the fewest units dropped whose compacted model is fast enough.

A latency target holds for the machine, the thread count, the runtime (eager PyTorch) and the batch it
was measured on (``example_inputs``), nothing else: the same masks may give a different speedup
elsewhere. Each candidate is compacted for real and timed against the model as it stands with
``metrics.time_interleaved`` (the one timer), then a bisection on the number of units dropped
finds the smallest count that reaches the target.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from .errors import InvalidSparsityError
from .metrics import time_interleaved

Select = Callable[[int], list[torch.Tensor]]  # keep vectors when the k lowest-ranked units go


def _call(model: nn.Module, x: Any) -> Callable[[], Any]:
    args = x if isinstance(x, tuple) else (x,)
    return lambda: model(*args)


def speedup(reference: nn.Module, small: nn.Module, example_inputs: Any, repeats: int = 15) -> float:
    """How many times faster ``small`` runs than ``reference`` on ``example_inputs`` (median, interleaved)."""
    timing = time_interleaved({"reference": _call(reference.eval(), example_inputs),
                               "small": _call(small.eval(), example_inputs)}, repeats=repeats, warmup=3)
    return timing.ratio("reference", "small")


def for_latency(structure: Any, parts: list, select: Select, target: float, model: nn.Module,
                example_inputs: Any, repeats: int = 15) -> tuple[list[torch.Tensor], float]:
    """Keep vectors with the fewest units dropped whose compacted model is ``target`` times faster, and that speedup.

    Candidates are built on a copy of ``model`` and its ``parts`` (the model is left unmasked).
    """
    from .graph.compact import compact

    if not target >= 1:
        raise InvalidSparsityError(f"latency_reduction must be >= 1 (got {target})")
    reference = compact(model, example_inputs, check=False)
    n = sum(p.size for p in parts)

    def measure(k: int) -> tuple[float, list[torch.Tensor]]:
        keeps = select(k)
        trial, trial_parts = copy.deepcopy((model, parts))
        for p, keep in zip(trial_parts, keeps):
            structure.apply(p, keep)
        return speedup(reference, compact(trial, example_inputs), example_inputs, repeats), keeps

    best, keeps = measure(n)
    if best < target:
        raise InvalidSparsityError(
            f"latency_reduction={target} is unreachable here: removing every unit allowed gives {best:.2f}x "
            "on this machine and batch; lower the target"
        )
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got, mid_keeps = measure(mid)
        if got >= target:
            hi, best, keeps = mid, got, mid_keeps
        else:
            lo = mid
    return keeps, best
