"""Dependency graph for structured pruning: trace coupled channels, cut them into units, compact for real.

Pruning traced units runs through the one engine: ``structures/channels.py`` and ``heads.py``."""
from .rules import PrunedMultiheadAttention
from .compact import apply_plan, compact, make_plan, verify
from .io import export_compact, load_compact, save_compact
from .core import Graph, Unit, units_of
from .trace import trace

__all__ = ["trace", "Graph", "Unit", "units_of", "compact", "apply_plan", "make_plan",
           "verify", "PrunedMultiheadAttention", "save_compact", "load_compact", "export_compact"]
