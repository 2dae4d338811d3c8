"""SNIP: connection sensitivity |g ⊙ w| on a data batch (Lee, Ajanthan & Torr, ICLR 2019)."""
from __future__ import annotations

from .base import register
from .gradient import Gradient


@register("snip")
class SNIP(Gradient):
    """Connection sensitivity s_j = |∂L/∂c_j| at c = 1 = |g_j · w_j|, with g = ∂L/∂w on ``data``.

    Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity". The paper
    multiplies every weight by a gate c_j and differentiates the loss at c = 1, which gives |g ⊙ w|;
    its normalization by Σ_k s_k does not change any ranking and is left out. Meant for a freshly
    initialized network and one batch (the paper's setting) but valid at any point of training; with
    several batches the gradient is their mean. Per unit (neurons, channels): the sum over the unit.
    It is the same quantity as ``gradient``, under the name the pruning-at-initialization papers use.
    """
