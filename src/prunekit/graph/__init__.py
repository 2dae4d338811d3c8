"""Dependency graph for structured pruning: trace coupled channels, score groups, compact for real."""
from .rules import PrunedMultiheadAttention
from .compact import apply_plan, compact, make_plan, verify
from .io import export_compact, load_compact, save_compact
from .core import Graph, Unit, units_of
from .prune import prune_structured
from .trace import trace

__all__ = ["trace", "Graph", "Unit", "units_of", "prune_structured", "compact", "apply_plan", "make_plan",
           "verify", "PrunedMultiheadAttention", "save_compact", "load_compact", "export_compact"]
