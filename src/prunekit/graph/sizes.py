"""Sizes read from module attributes: which attribute sized which dimension, and its value after compaction.

While tracing, every plain ``int`` attribute of every module (``self.num_heads``, ``self.attn_dim``,
``self.chs``...) is swapped for a :class:`Size`, an ``int`` that remembers how it was computed from
attributes (``self.num_heads * self.head_dim``, ``self.chs // 2``). A shape op that receives one as
the size of a dimension records an :class:`Equation`; compaction solves the equations for the new
attribute values, so a forward pass that sizes tensors from attributes runs on the smaller model.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import CompactionError
from .core import aligned

Expr = tuple  # ("attr", name) | ("const", v) | ("shape", v, labels) | ("numel", v) | (operator name, Expr, Expr)
_OPS: dict[str, Callable[[int, int], int]] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv}


class Size(int):
    """An ``int`` computed from module attributes; arithmetic with ints keeps the recipe."""

    expr: Expr

    def __new__(cls, value: int, expr: Expr) -> "Size":
        obj = super().__new__(cls, value)
        obj.expr = expr
        return obj

    def __reduce__(self):  # copies and pickles of a traced module hold plain ints
        return int, (int(self),)


def _arith(name: str, swap: bool) -> Callable:
    fn = _OPS[name]

    def method(self: Size, other: Any) -> Any:
        if type(other) is bool or not isinstance(other, int):
            return getattr(int(self), f"__{'r' if swap else ''}{name}__")(other)
        mine, theirs = self.expr, other.expr if isinstance(other, Size) else ("const", int(other))
        a, b = (theirs, mine) if swap else (mine, theirs)
        return Size(fn(int(self), int(other)) if not swap else fn(int(other), int(self)), (name, a, b))

    return method


for _name in _OPS:
    setattr(Size, f"__{_name}__", _arith(_name, False))
    setattr(Size, f"__r{_name}__", _arith(_name, True))


def install(model: nn.Module) -> dict[str, int]:
    """Swap every public ``int`` attribute of every module for a :class:`Size` naming it; return their values."""
    values = {}
    for mname, module in model.named_modules():
        for key, value in list(vars(module).items()):
            if type(value) is int and not key.startswith("_"):
                qname = f"{mname}.{key}" if mname else key
                module.__dict__[key] = Size(value, ("attr", qname))
                values[qname] = value
    return values


def uninstall(model: nn.Module) -> None:
    """Plain ints again, also where the forward pass stored a derived :class:`Size`."""
    for module in model.modules():
        for key, value in list(vars(module).items()):
            if isinstance(value, Size):
                module.__dict__[key] = int(value)


def measured(out: Any, labels: torch.Tensor | None, dim: int | None = None) -> Any:
    """``x.shape`` / ``x.size()`` as :class:`Size`: read from a tensor, so they follow it after compaction.

    Each remembers the labels of the dimension it measured (``labels``: x's, or None if x is untracked).
    """
    if type(out) is int and dim is None:  # numel: counts every dim at once
        return Size(out, ("numel", out))
    if type(out) is int:
        return Size(out, ("shape", out, _along(labels, dim)))
    if isinstance(out, torch.Size):
        return torch.Size(Size(v, ("shape", v, _along(labels, d))) for d, v in enumerate(out))
    return out


def _along(labels: torch.Tensor | None, d: int) -> torch.Tensor | None:
    if labels is None:
        return None
    n = labels.shape[d]
    return labels.movedim(d, 0).reshape(n, -1)[:, 0]


def evaluate(expr: Expr, env: dict[str, int]) -> int:
    kind = expr[0]
    if kind == "attr":
        return env[expr[1]]
    if kind in ("const", "shape", "numel"):
        return expr[1]
    return _OPS[kind](evaluate(expr[1], env), evaluate(expr[2], env))


def names(expr: Expr) -> set[str]:
    if expr[0] == "attr":
        return {expr[1]}
    if expr[0] in ("const", "shape", "numel"):
        return set()
    return names(expr[1]) | names(expr[2])


def measures(expr: Expr) -> bool:
    """Whether ``expr`` reads a tensor's shape (then the forward pass recomputes it)."""
    return expr[0] in ("shape", "numel") or (expr[0] not in ("attr", "const") and (measures(expr[1]) or measures(expr[2])))


@dataclass
class Equation:
    """``expr`` sized dimension ``dim`` of the output of ``op`` in ``module``; ``labels`` are that dim's elements."""

    expr: Expr
    labels: torch.Tensor  # 1-D: one element per index, or one element for the whole dim
    size: int
    op: str
    module: str
    dim: int

    def target(self, kept: Callable[[int], bool]) -> int:
        if len(self.labels) == 1:
            return self.size
        return sum(kept(int(e)) for e in self.labels.tolist())

    def where(self) -> str:
        return f"{self.op!r} in layer {self.module!r} (dimension {self.dim})"


def sized_dims(name: str, args: tuple, kwargs: dict, outs: list[torch.Tensor]) -> list[tuple[int, int, Any]]:
    """(output index, dim, size argument) for each output dim a shape op was told the size of."""
    rest = list(args[1:])
    if name in ("view", "reshape", "expand"):
        sizes = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
        sizes = list(kwargs.get("size", kwargs.get("shape", sizes)))
        if len(sizes) == outs[0].dim():
            return [(0, d, s) for d, s in enumerate(sizes)]
    elif name == "unflatten" and len(rest) >= 2:
        dim = rest[0] % (outs[0].dim() - len(rest[1]) + 1)
        return [(0, dim + i, s) for i, s in enumerate(rest[1])]
    elif name in ("split", "split_with_sizes") and rest:
        sizes = rest[0] if not isinstance(rest[0], (tuple, list)) else None
        dim = (rest[1] if len(rest) > 1 else kwargs.get("dim", 0)) % outs[0].dim()
        if sizes is None:
            return [(i, dim, s) for i, s in enumerate(rest[0])]
        return [(i, dim, sizes) for i in range(len(outs)) if outs[i].shape[dim] == int(sizes)]
    return []


def solve(equations: list[Equation], kept: Callable[[int], bool], values: dict[str, int]) -> dict[str, int]:
    """New values of the attributes whose equations compaction changes (only those that change).

    An attribute that sizes a dimension alone is solved from it; one that appears in a product or a
    quotient (``heads * head_dim``, ``chs // 2``) is solved once every other attribute there is known.
    """
    env = dict(values)
    targets = [(eq, eq.target(kept)) for eq in equations]
    pinned = {next(iter(names(eq.expr))) for eq, t in targets
              if len(names(eq.expr)) == 1 and evaluate(eq.expr, env) == t}
    changed: set[str] = set()
    progress = True
    while progress:
        progress = False
        for eq, t in targets:
            if evaluate(eq.expr, env) == t:
                continue
            free = sorted(names(eq.expr) - pinned - changed)
            if len(free) != 1:
                continue
            value = _invert(eq.expr, free[0], env, t)
            if value is None:
                raise CompactionError(
                    f"{eq.where()} gets its size {eq.size} from the attribute {free[0]!r}; compaction makes it "
                    f"{t}, which no integer value of {free[0]!r} gives — prune in units that keep it integral "
                    "(round_to=) or exclude that layer")
            env[free[0]] = value
            changed.add(free[0])
            progress = True
    for eq, t in targets:
        if evaluate(eq.expr, env) != t:
            attrs = ", ".join(repr(n) for n in sorted(names(eq.expr)))
            raise CompactionError(
                f"{eq.where()} gets its size {eq.size} from the attributes {attrs}; compaction changes it to "
                f"{t} but cannot tell which attribute to update (or they conflict) — size that dimension "
                "from the tensor's shape or -1, or exclude that layer")
    return {n: env[n] for n in changed if env[n] != values[n]}


def _invert(expr: Expr, name: str, env: dict[str, int], target: int) -> int | None:
    """An integer value of attribute ``name`` that makes ``expr`` equal ``target`` (closest to linear)."""
    def f(v: int) -> int:
        return evaluate(expr, {**env, name: v})

    v0 = env[name]
    span = 1000 * (abs(v0) + 1)
    slope = (f(v0 + span) - f(v0)) / span
    if slope == 0:
        return None
    guess = round(v0 + (target - f(v0)) / slope)
    for step in (0, 1, -1, 2, -2):
        if guess + step > 0 and f(guess + step) == target:
            return guess + step
    return None


def record(tr: Any, name: str, args: tuple, kwargs: dict, outs: list[torch.Tensor]) -> None:
    """Remember each output dimension of a shape op whose size came from module attributes, a number
    written in the code, or another tensor's shape: compaction solves the first and checks the others."""
    for i, d, size in sized_dims(name, args, kwargs, outs):
        labels = tr.get(outs[i])
        if labels is None or type(size) is bool or not isinstance(size, int):
            continue
        vec = _along(aligned(labels, outs[i].dim()), d)
        if len(vec) == 1:
            continue  # one unit spans the dim: its size never changes
        if isinstance(size, Size) and names(size.expr) and not measures(size.expr):
            tr.graph.sizes.append(Equation(size.expr, vec, int(size), name, tr.here(), d))
        elif not isinstance(size, Size) and size != -1:
            tr.graph.fixed.append(Fixed(vec, None, int(size), name, tr.here(), d))
        elif isinstance(size, Size) and size.expr[0] == "shape":
            source = size.expr[2]
            if source is None or len(source) != len(vec) or \
                    sorted(tr.graph.roots(vec).tolist()) != sorted(tr.graph.roots(source).tolist()):
                tr.graph.fixed.append(Fixed(vec, source, int(size), name, tr.here(), d))


@dataclass
class Fixed:
    """A dimension sized by a number in the code (``source`` None) or by another tensor's ``shape[d]``.

    Pruning may still mask its channels; compaction refuses unless it keeps exactly that many.
    """

    labels: torch.Tensor
    source: torch.Tensor | None
    size: int
    op: str
    module: str
    dim: int

    def check(self, kept: Callable[[int], bool]) -> None:
        have = sum(kept(int(e)) for e in self.labels.tolist())
        need = self.size if self.source is None or len(self.source) == 1 else sum(
            kept(int(e)) for e in self.source.tolist())
        if have == need:
            return
        what = (f"hard-codes dimension {self.dim} as {self.size}" if self.source is None else
                f"sizes dimension {self.dim} with another tensor's shape ({self.size}, {need} after compaction)")
        raise CompactionError(
            f"{self.op!r} in layer {self.module!r} {what}, but compaction leaves {have} channels there — write -1 "
            f"or size it from a module attribute or this tensor's shape, or exclude layer {self.module!r} from "
            "channel/head pruning (masks alone are fine)")
