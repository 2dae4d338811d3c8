"""Scores: how important is a unit? One small class per family, all in one registry.

A new score is one class with ``__call__(weight, context)`` and one ``@register("name")`` line.
"""
from .base import Score, ScoreContext, Target, register, registry
from .gradient import Gradient
from .magnitude import Magnitude
from .random import Random

__all__ = ["Score", "ScoreContext", "Target", "register", "registry", "Magnitude", "Gradient", "Random"]
