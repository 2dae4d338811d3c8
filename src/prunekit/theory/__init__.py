"""Probabilistic gap analysis (after Qian & Klabjan 2021): how far can a network be pruned and stay within ε?

``gap`` measures ‖F(x) − F_pruned(x)‖ by Monte Carlo with confidence intervals, ``random_network``
builds the i.i.d. targets of the paper, ``max_sparsity`` finds per-layer ratios for ``pk.prune``.
"""
from .allocate import Allocation, max_sparsity
from .closed_form import energy_fraction, expected_sq_gap_linear, predicted_rel_gap
from .gap import Evaluator, gap, is_stochastic
from .networks import draw_inputs, random_network, second_moment
from .report import GapReport
from .stats import clopper_pearson, mean_interval, min_samples
from .sweep import plot_sweep, sweep

__all__ = [
    "gap", "GapReport", "Evaluator", "is_stochastic", "max_sparsity", "Allocation", "random_network",
    "draw_inputs", "second_moment", "expected_sq_gap_linear", "energy_fraction", "predicted_rel_gap",
    "clopper_pearson", "mean_interval", "min_samples", "sweep", "plot_sweep",
]
