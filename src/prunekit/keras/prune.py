"""``prune``: exact-count pruning of a Keras 3 model, in place, with masks held through ``fit``.

Data flows as in the rest of prunekit: targets (which kernels) → scores (``keras.ops``, any backend)
→ scope (exact selection: prunekit's one engine, :func:`prunekit.scope.keep_lowest_dropped`, on the
host) → masks (a constraint per variable, see :mod:`prunekit.keras.masks`).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import InvalidSparsityError, NonFiniteWeightsError, PruneError, UnknownNameError
from ..selection import count, keep_lowest_dropped
from . import masks as kmasks
from .errors import require_keras
from .scores import score as compute_score
from .structures import STRUCTURES, check, kernel_units_pruned, nm_keep, num_units, parse_nm, unit_keep_to_masks
from .targets import Target, matches, output_layers, select

SCOPES = ("global", "layer")


def _check_sparsity(sparsity: Any) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise InvalidSparsityError(
            f"sparsity is the final fraction of prunable weights (or units) that are zero and must be in [0, 1) "
            f"(got {sparsity!r}); for example sparsity=0.9"
        )
    return float(sparsity)


def _sparsity_for_compression(model: Any, targets: list[Target], compression: float) -> float:
    """The weight sparsity at which all parameters / nonzero parameters equals ``compression``."""
    if not isinstance(compression, (int, float)) or compression < 1:
        raise InvalidSparsityError(f"compression is all params / nonzero params and must be >= 1 (got {compression!r})")
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    prunable = sum(int(np.prod(t.shape)) for t in targets)
    s = (total - total / compression) / prunable
    if not 0 <= s < 1:
        raise InvalidSparsityError(f"compression {compression} is out of reach: the prunable kernels hold "
                                   f"{prunable} of {total} parameters")
    return s


def _old_mask(model: Any, t: Target) -> np.ndarray | None:
    entry = kmasks.get(model).get(t.path)
    return None if entry is None else entry[1]


def _unit_scores(model: Any, t: Target, structure: str, score: str, seed: int) -> np.ndarray:
    units = structure == "units"
    s = compute_score(score, t.variable.value, t.unit_ndim if units else None, seed)
    if not np.isfinite(s).all():
        raise NonFiniteWeightsError(f"{t.path} holds NaN or infinite values; fix the weights before pruning")
    old = _old_mask(model, t)
    if old is not None:  # already pruned weights/units go first: masks only ever grow
        pruned = kernel_units_pruned(old, t) if units else ~old
        s = np.where(pruned, -np.inf, s)
    return s.reshape(-1)


def prune(model: Any, sparsity: float | None = None, *, compression: float | None = None,
          structure: str = "weights", score: str = "magnitude", scope: str = "global",
          exclude: Iterable[Any] = (), outputs: Iterable[str] = (), seed: int = 0) -> dict[str, np.ndarray]:
    """Prune ``model`` in place so that exactly ``round(sparsity × N)`` of its N prunable units are zero.

    ``structure``: "weights" (single kernel entries), "units" (whole Dense units / conv filters, with
    their bias) or "N:M" such as "2:4" (N kept per M consecutive inputs; sparsity fixed at 1 − N/M).
    ``score``: "magnitude" or "random" (seeded). ``scope``: "global" (one ranking over the model) or
    "layer" (the same fraction of every kernel). ``exclude``: layer names (shell patterns) or layer
    classes left dense. ``structure="units"`` never removes the units of the model's output layer(s)
    unless they are named in ``outputs``. ``sparsity`` is the final fraction over the whole scope
    (never "of what remains"); earlier masks are kept. Pruned weights stay exactly zero through any
    ``model.fit``. Returns ``{variable.path: kept mask}`` for the kernels pruned by this call.
    """
    require_keras()
    if scope not in SCOPES:
        raise UnknownNameError(f"unknown scope {scope!r}; valid: {', '.join(SCOPES)}")
    nm = parse_nm(structure)
    if nm is None and structure not in STRUCTURES:
        raise UnknownNameError(f"unknown structure {structure!r}; valid: weights, units, or 'N:M' such as '2:4'")
    targets = select(model, exclude)
    outputs = list(outputs)
    if structure == "units":
        names = [s for s in outputs if not any(matches(s, t) for t in targets)]
        if names:
            raise UnknownNameError(f"outputs={names} names no prunable layer of {model.name}")
        out_ids = output_layers(model)
        targets = [t for t in targets if id(t.layer) not in out_ids or any(matches(s, t) for s in outputs)]
        if not targets:
            raise PruneError("only output layers are prunable and their units are kept; name them in outputs=[...]")
    elif outputs:
        raise PruneError("outputs= applies to structure='units' only (other structures keep every output unit)")
    for t in targets:
        check(structure, t, nm)
    if nm is not None:
        if compression is not None or (sparsity is not None and not math.isclose(sparsity, nm.sparsity)):
            raise InvalidSparsityError(f"structure {nm.name!r} fixes the sparsity at {nm.sparsity}; omit sparsity=")
        return _prune_nm(model, targets, nm, score, seed)
    if (sparsity is None) == (compression is None):
        raise InvalidSparsityError("pass exactly one of sparsity= (final fraction pruned) or compression=")
    if compression is not None:
        if structure != "weights":
            raise PruneError("compression= works with structure='weights'; pass sparsity= for units")
        sparsity = _sparsity_for_compression(model, targets, compression)
    sparsity = _check_sparsity(sparsity)
    scores = [_unit_scores(model, t, structure, score, seed + i) for i, t in enumerate(targets)]
    sizes = [num_units(structure, t) for t in targets]
    groups = [list(range(len(targets)))] if scope == "global" else [[i] for i in range(len(targets))]
    keeps: list[np.ndarray] = [np.ones(0, bool)] * len(targets)
    for group in groups:
        n = sum(sizes[i] for i in group)
        done = sum(int(np.isneginf(scores[i]).sum()) for i in group)
        k = count(sparsity, n)
        if done > k:
            raise InvalidSparsityError(
                f"{done}/{n} units are already pruned, more than sparsity {sparsity} asks for; masks only remove "
                "more — call prunekit.keras.unprune(model) first to start over"
            )
        fns = [lambda s=scores[i]: [torch.from_numpy(s)] for i in group]
        for i, keep in zip(group, keep_lowest_dropped(fns, [sizes[i] for i in group], k)):
            keeps[i] = keep.numpy()
    result = {}
    for t, keep in zip(targets, keeps):
        if structure == "units":
            kernel_mask, bias_mask = unit_keep_to_masks(keep, t)
            if bias_mask is not None:
                kmasks.attach(model, t.bias, bias_mask)
        else:
            kernel_mask = keep.reshape(t.shape)
        kmasks.attach(model, t.variable, kernel_mask)
        result[t.path] = kernel_mask
    return result


def _prune_nm(model: Any, targets: list[Target], nm: Any, score: str, seed: int) -> dict[str, np.ndarray]:
    result = {}
    for i, t in enumerate(targets):
        s = _unit_scores(model, t, "weights", score, seed + i).reshape(t.shape)
        mask = nm_keep(s, nm)
        old = _old_mask(model, t)
        mask = mask if old is None else mask & old
        kmasks.attach(model, t.variable, mask)
        result[t.path] = mask
    return result


def sparsity(model: Any, exclude: Iterable[Any] = ()) -> float:
    """Fraction of the prunable kernel entries (Dense/Conv/Depthwise/RNN kernels minus ``exclude``) that are 0."""
    ops = require_keras().ops
    targets = select(model, exclude)
    zeros = sum(int(np.sum(ops.convert_to_numpy(t.variable.value) == 0)) for t in targets)
    return zeros / sum(int(np.prod(t.shape)) for t in targets)
