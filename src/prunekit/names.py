"""The one module-name matcher: ``exclude``, per-layer ratio keys and ``prune_outputs`` all mean the same.

A rule is one of

* a module name (``"features.3"``): that module **and every submodule under it**, so
  ``"classifier"`` covers all layers of an ``nn.Sequential`` classifier;
* a parameter's qualified name (``"fc1.weight"``): that parameter (and so its module);
* a glob (``"*.fc"``, ``"layer1.*"``): every module or parameter whose name matches, and their submodules;
* a module type (``nn.Conv2d``): every module of that type.

A name or glob that matches nothing in the model raises :class:`UnknownNameError` naming it, with
the closest names the model does have. A type that matches nothing is accepted (``exclude=[nn.Embedding]``
is a sensible default for any model).
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Iterable

from torch import nn

from .errors import UnknownNameError

_GLOB = set("*?[")


def rules(spec: Any) -> tuple[Any, ...]:
    """A rule or an iterable of rules, as a tuple."""
    if spec is None:
        return ()
    return (spec,) if isinstance(spec, (str, type)) else tuple(spec)


def _ancestors(name: str) -> list[str]:
    """``"a.b.c"`` → ``["a.b.c", "a.b", "a"]`` (a module is covered by rules on any of these)."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] or [""]


def specificity(rule: Any, module_name: str, module: nn.Module, pname: str | None = None) -> int | None:
    """How precisely ``rule`` names a module (or its parameter ``pname``): higher is more specific, None = no match.

    Exact parameter names beat exact module names, which beat ancestors (deeper first), which beat
    globs, which beat types; per-layer ratios use this to let the most specific key win.
    """
    if isinstance(rule, type):
        return 0 if isinstance(module, rule) else None
    if not isinstance(rule, str):
        raise UnknownNameError(f"a module rule must be a name, a glob or a type (got {rule!r})")
    qname = f"{module_name}.{pname}" if module_name and pname else (pname or module_name)
    if pname is not None and rule == qname:
        return 3_000_000
    chain = _ancestors(module_name)
    if rule in chain:
        return 2_000_000 - chain.index(rule)
    if _GLOB & set(rule):
        if (pname is not None and fnmatch.fnmatchcase(qname, rule)) or any(
            fnmatch.fnmatchcase(a, rule) for a in chain
        ):
            return 1
    return None


def check_known(model: nn.Module, spec: Iterable[Any], what: str) -> None:
    """Raise for every name or glob in ``spec`` that names no module or parameter of ``model``."""
    entries = [(n, m, p) for n, m in model.named_modules() for p in [None, *(k for k, _ in m.named_parameters(recurse=False))]]
    for rule in spec:
        if isinstance(rule, type) or any(specificity(rule, n, m, p) is not None for n, m, p in entries):
            continue
        names = [n for n, _, p in entries if n and p is None] + [f"{n}.{p}" if n else p for n, _, p in entries if p]
        close = difflib.get_close_matches(str(rule), names, n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else f"; names look like: {', '.join(names[:6])}"
        raise UnknownNameError(f"{what} {rule!r} matches nothing in {type(model).__name__}{hint}")


class Matcher:
    """A checked set of rules over one model: ``matcher(name, module, pname)`` says whether any rule covers it."""

    def __init__(self, model: nn.Module, spec: Any, what: str = "exclude"):
        self.rules = rules(spec)
        check_known(model, self.rules, what)

    def __call__(self, module_name: str, module: nn.Module, pname: str | None = None) -> bool:
        return any(specificity(r, module_name, module, pname) is not None for r in self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)
