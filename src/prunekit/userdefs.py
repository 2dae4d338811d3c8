"""``module:attribute`` references to a user's own code (model factories, dataset functions).

The module is imported with the current directory on ``sys.path`` first, as ``python -m`` would, so
``prunekit prune mynet:build`` finds ``./mynet.py`` even when run from the installed console script.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .errors import PruneError


def is_reference(text: str) -> bool:
    """Whether ``text`` names ``module:attribute`` (not a zoo name, not a path)."""
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr) and "/" not in text and "\\" not in text


def load(reference: str, what: str) -> Any:
    """The object ``module:attribute`` names (``what`` says what it should be, for the error)."""
    if not is_reference(reference):
        raise PruneError(f"{reference!r} is not module:function; name your {what} as module:function, e.g. mynet:build")
    module_name, _, attr = reference.partition(":")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise PruneError(f"cannot load {what} {reference!r}: {err}; give module:function importable from "
                         f"the current directory ({cwd}) or PYTHONPATH") from None
    finally:
        if added:
            sys.path.remove(cwd)
    return obj


def model(reference: str) -> Any:
    """A fresh ``torch.nn.Module`` from the user's factory ``module:function`` (called with no arguments)."""
    from torch import nn

    made = load(reference, "model factory")()
    if not isinstance(made, nn.Module):
        raise PruneError(f"{reference} returned {type(made).__name__}, not a torch.nn.Module")
    return made
