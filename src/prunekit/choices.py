"""What ``pk.prune`` accepts, read from the registries when asked: names, and what a score needs.

The harness, the CLI and the prune → fine-tune driver ask here instead of testing names, so a score
or structure registered anywhere (a test file, a user's module) reaches all of them. Nothing here
is a fixed list: every answer is read from ``pk.structures``, ``pk.scores`` and ``pk.scope`` at call
time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import scope, scores, structures
from .errors import UnknownNameError

NM_HINT = "N:M such as 2:4"


def traced_names() -> list[str]:
    """The structure names that trace the model (they need example inputs)."""
    return [n for n in structure_names() if is_traced(n)]


def taking(option: str) -> list[str]:
    """The structure names whose constructor takes ``option`` (``round_to``, ``max_ratio``, ``reduce``...)."""
    import inspect

    found = []
    for n in structure_names():
        cls = structures.registry.lookup(n)
        own = isinstance(cls, type) and cls.__init__ is not object.__init__
        params = inspect.signature(cls.__init__).parameters if own else {}
        if option in params or (any(p.kind is p.VAR_KEYWORD for p in params.values()) and n in traced_names()):
            found.append(n)
    return found


def structure_names() -> list[str]:
    """Every structure name ``pk.prune`` takes (N:M also takes any ``"N:M"`` spelling)."""
    return structures.registry.names()


def is_traced(structure: Any) -> bool:
    """Whether ``structure`` prunes coupled units found by tracing: it needs ``example_inputs``."""
    return bool(getattr(_structure_class(structure), "needs_example_inputs", False))


def _structure_class(structure: Any) -> Any:
    """The structure's class or object (N:M included), or None for a name nobody registered."""
    nm = structures.parse(structure)
    if nm is not None or not isinstance(structure, str):
        return nm or structure
    return structures.registry.lookup(structure)


def is_elementwise(structure: Any) -> bool:
    """Whether ``structure`` removes single weights anywhere (deployed with sparse kernels, not compaction)."""
    obj = _structure_class(structure)
    if structures.parse(structure) is not None or obj is None:
        return False
    return (issubclass(obj, structures.Weights) if isinstance(obj, type) else isinstance(obj, structures.Weights))


def check_structure(name: str) -> str:
    """``name`` if ``pk.prune`` takes it as a structure; else :class:`UnknownNameError` listing them."""
    if name in structure_names() or structures.parse(name) is not None:
        return name
    raise UnknownNameError(f"unknown structure {name!r}; valid structures: {', '.join(structure_names())}, "
                           f"or {NM_HINT}")


def score_names(structure: Any = "weights") -> list[str]:
    """The score names valid for ``structure``: single weights (and N:M) need a score that ranks weights."""
    weights = is_elementwise(structure) or structures.parse(structure) is not None
    return [n for n in scores.registry.names() if not weights or scores.registry.lookup(n).ranks_weights()]


def check_score(name: str, structure: Any = "weights") -> str:
    """``name`` if it scores ``structure``; else :class:`UnknownNameError` listing the valid ones."""
    if name not in score_names(structure):
        raise UnknownNameError(f"unknown score {name!r} for structure {structure!r}; "
                               f"valid scores: {', '.join(score_names(structure))}")
    return name


def scope_names() -> list[str]:
    """Every registered scope name (``pk.prune`` also takes a per-layer dict of ratios)."""
    return scope.registry.names()


@dataclass(frozen=True)
class Needs:
    """What ``pk.prune`` needs besides the model for one structure and score."""

    data: bool = False
    example_inputs: bool = False
    fixed_sparsity: float | None = None  # N:M: the sparsity the structure itself fixes


def needs(structure: Any = "weights", score: Any = None) -> Needs:
    """Ask the score (``needs_data``, ``needs_example_inputs``) and the structure (tracing, fixed sparsity)."""
    obj = scores.registry.get(score) if score is not None else None
    fixed = getattr(_structure_class(structure), "sparsity", None)
    return Needs(data=bool(getattr(obj, "needs_data", False)),
                 example_inputs=is_traced(structure) or bool(getattr(obj, "needs_example_inputs", False)),
                 fixed_sparsity=fixed if isinstance(fixed, float) else None)


__all__ = ["structure_names", "traced_names", "taking", "score_names", "scope_names", "check_structure", "check_score", "is_traced", "is_elementwise",
           "needs", "Needs"]
