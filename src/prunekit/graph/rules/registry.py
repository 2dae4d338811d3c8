"""Where label rules are registered: one rule per torch function / Tensor method name, one leaf per module type.

Rule files (``ops``, ``layers``, ``attention``) register here and the tracer reads here, so a new rule is
one decorated function in one file and nothing imports in a circle.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..trace import Tracer

Rule = Callable[["Tracer", Callable, tuple, dict, Any], None]
Leaf = Callable[..., None]  # (tracer, module name, module, args, kwargs, output)
RULES: dict[str, Rule] = {}
LEAVES: dict[type, Leaf] = {}


def _register(table: dict, keys: tuple) -> Callable:
    def deco(fn: Callable) -> Callable:
        for k in keys:
            table[k] = fn
        return fn

    return deco


def rule(*names: str) -> Callable[[Rule], Rule]:
    """Register a label rule for torch functions / Tensor methods of these names."""
    return _register(RULES, names)


def leaf(*types: type) -> Callable[[Leaf], Leaf]:
    """Register a rule for whole modules of these types, traced as one op (their insides are not)."""
    return _register(LEAVES, types)
