"""Label rules, one file per family of ops: pointwise/reduction/shape (``ops``), layers, attention modules."""
from . import attention, layers, ops  # noqa: F401  (each registers its rules)
from .attention import PrunedMultiheadAttention
from .registry import LEAVES, RULES, leaf, rule

__all__ = ["RULES", "LEAVES", "rule", "leaf", "PrunedMultiheadAttention"]
