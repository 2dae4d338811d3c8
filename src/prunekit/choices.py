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


def _traced() -> tuple[str, ...]:
    """Structure names the graph engine runs outside the structure registry (channels, heads), if any.

    A registered structure says it traces with a true ``needs_example_inputs`` attribute instead.
    """
    from .graph import prune as graph_prune

    return tuple(getattr(graph_prune, "STRUCTURES", ()))


def traced_names() -> list[str]:
    """The structure names that trace the model (they need example inputs)."""
    return [n for n in structure_names() if is_traced(n)]


def structure_names() -> list[str]:
    """Every structure name ``pk.prune`` takes (N:M also takes any ``"N:M"`` spelling)."""
    return sorted(set(structures.registry.names()) | set(_traced()))


def is_traced(structure: Any) -> bool:
    """Whether ``structure`` prunes coupled units found by tracing: it needs ``example_inputs``."""
    if isinstance(structure, str) and structure in _traced():
        return True
    obj = structure if not isinstance(structure, str) else None
    if obj is None and isinstance(structure, str) and structure in structures.registry:
        obj = structures.registry.get(structure)
    return bool(getattr(obj, "needs_example_inputs", False))


def is_elementwise(structure: Any) -> bool:
    """Whether ``structure`` removes single weights anywhere (deployed with sparse kernels, not compaction)."""
    if structures.parse(structure) is not None or is_traced(structure):
        return False
    obj = structures.registry.get(structure) if isinstance(structure, str) else structure
    return isinstance(obj, structures.Weights)


def check_structure(name: str) -> str:
    """``name`` if ``pk.prune`` takes it as a structure; else :class:`UnknownNameError` listing them."""
    if name in structure_names() or structures.parse(name) is not None:
        return name
    raise UnknownNameError(f"unknown structure {name!r}; valid structures: {', '.join(structure_names())}, "
                           f"or {NM_HINT}")


def _score_registry(structure: Any) -> Any:
    """The registry whose scores rank this structure's units (one registry once group scores merge in)."""
    group = getattr(scores, "group_registry", None)
    return group if group is not None and is_traced(structure) else scores.registry


def score_names(structure: Any = "weights") -> list[str]:
    """The score names valid for ``structure``."""
    return _score_registry(structure).names()


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
    """Ask the score (``needs_data``) and the structure (tracing, fixed N:M sparsity) what they need."""
    obj = _score_registry(structure).get(score) if score is not None else None
    nm = structures.parse(structure)
    return Needs(data=bool(getattr(obj, "needs_data", False)), example_inputs=is_traced(structure),
                 fixed_sparsity=nm.sparsity if nm is not None else None)


__all__ = ["structure_names", "traced_names", "score_names", "scope_names", "check_structure", "check_score", "is_traced", "is_elementwise",
           "needs", "Needs"]
