"""Closed forms that the Monte Carlo estimates are checked against."""
from __future__ import annotations

import torch

from ..errors import PruneError
from ..selection import count


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


def energy_fraction(sparsity: float, score: str = "random", init: str = "gaussian") -> float:
    """The expected fraction of an i.i.d. layer's squared weight mass that pruning a fraction ``s`` removes.

    Random pruning removes s. Magnitude pruning removes the smallest |w|: for Gaussian weights with
    t = Φ⁻¹((1+s)/2) that is s − 2tφ(t); for uniform weights s³. For one Linear layer on isotropic
    inputs this is E‖Δy‖² / E‖y‖² (large-layer limit).
    """
    if not 0 <= sparsity < 1:
        raise PruneError(f"sparsity must be in [0, 1) (got {sparsity!r})")
    if score == "random":
        return float(sparsity)
    if score != "magnitude":
        raise PruneError(f"energy_fraction knows scores 'random' and 'magnitude' (got {score!r})")
    if init == "uniform":
        return float(sparsity) ** 3
    if init != "gaussian":
        raise PruneError(f"unknown init {init!r}; choose 'gaussian' or 'uniform'")
    from scipy.stats import norm

    t = float(norm.ppf((1 + sparsity) / 2))
    return float(sparsity - 2 * t * norm.pdf(t))


def predicted_rel_gap(sparsity: float, depth: int, score: str = "random", init: str = "gaussian") -> float:
    """A first-order heuristic for E[(‖Δy‖/‖y‖)²] of a depth-L i.i.d. ReLU network pruned per layer.

    Each layer keeps 1 − e(s) of its signal energy coherent with the target, e from
    :func:`energy_fraction`, so 1 − (1 − e)^L; ReLU's effect on correlations is ignored. Exact for one
    Linear layer in the large-width limit; bench/gap.py compares it with measurements on deeper nets.
    """
    return 1.0 - (1.0 - energy_fraction(sparsity, score, init)) ** depth
