"""Scores: how important is a unit? One small class per family, all in one registry.

A new score is one class with ``__call__(weight, context)`` and one ``@register("name")`` line.
Structured pruning (``structure="channels"|"heads"``) ranks whole units with the group scores of
``group.py`` (their own registry, ``group_registry``; a new one is a class + ``@register_group``).
"""
from .base import Score, ScoreContext, Target, register, registry
from .gradient import Gradient
from .group import GroupScore, group_registry, register_group
from .magnitude import Magnitude
from .random import Random

__all__ = ["Score", "ScoreContext", "Target", "register", "registry", "Magnitude", "Gradient", "Random",
           "GroupScore", "group_registry", "register_group"]
