"""Closed forms that the Monte Carlo estimates are checked against."""
from __future__ import annotations

import torch

from ..scope import count


def expected_sq_gap_linear(
    weight: torch.Tensor, sparsity: float, *, rescale: bool = False, second_moment: float = 1.0
) -> float:
    """E‖Δy‖² for ``y = W x`` when exactly ``round(s·N)`` of W's N weights are dropped uniformly at random.

    Inputs have uncorrelated zero-mean coordinates with E[x_j²] = ``second_moment``. Each weight is
    dropped with probability s' = k/N, so the cross terms vanish and E‖Δy‖² = s'·‖W‖²_F·E[x²];
    rescaling the survivors by 1/(1−s') trades that bias for variance: s'/(1−s')·‖W‖²_F·E[x²].
    """
    n = weight.numel()
    s = count(sparsity, n) / n
    factor = s / (1 - s) if rescale else s
    return float(factor * weight.detach().double().pow(2).sum() * second_moment)
