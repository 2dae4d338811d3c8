"""Scores: how important is a unit? One small class per family, all in one registry.

A new score is one class with ``__call__(weight, context)`` (or ``slices(weight, dim, context)``)
and one ``@register("name")`` line; every structure (weights, neurons, N:M, channels, heads) uses it.
"""
from .base import Score, ScoreContext, Target, by_slice, reduce_units, register, registry
from .gradient import Gradient, Taylor
from .grasp import GraSP, GraSPMagnitude
from .magnitude import L1, L2, Magnitude
from .random import Random
from .snip import SNIP
from .synflow import SynFlow
from .blocks import BlockInfluence, BlockScore, BranchNorm, SkipLoss, StreamChange
from .unit import BNScale, FPGM
from .sparsegpt import SparseGPT
from .wanda import Wanda

__all__ = ["Score", "ScoreContext", "Target", "register", "registry", "by_slice", "reduce_units",
           "Magnitude", "L1", "L2", "Gradient", "Taylor", "Random", "BNScale", "FPGM", "Wanda", "SparseGPT",
           "SNIP", "GraSP", "GraSPMagnitude", "SynFlow",
           "BlockScore", "StreamChange", "BlockInfluence", "BranchNorm", "SkipLoss"]
