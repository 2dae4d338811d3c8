"""prune / sparsity: a thin composition of structure × score × scope → masks."""
from __future__ import annotations

import fnmatch
import math
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from . import scope as scopes
from . import scores, structures
from .errors import InvalidSparsityError, NoPrunableLayersError, NonFiniteWeightsError, PruneError
from .masks import Masks, attach, mask_of
from .scores import ScoreContext, Target
from .threads import one_thread

PRUNABLE_TYPES: tuple[type, ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)

METHODS: dict[str, tuple[str, str]] = {
    "global-magnitude": ("magnitude", "global"),
    "layer-magnitude": ("magnitude", "layer"),
    "global-gradient": ("gradient", "global"),
    "layer-gradient": ("gradient", "layer"),
    "random": ("random", "layer"),
}


def _excluded(name: str, module: nn.Module, exclude: Iterable[Any]) -> bool:
    for rule in exclude:
        if isinstance(rule, type) and isinstance(module, rule):
            return True
        if isinstance(rule, str) and (name == rule or fnmatch.fnmatchcase(name, rule)):
            return True
    return False


def prunable(model: nn.Module, exclude: Iterable[Any] = ()) -> list[Target]:
    """The weights prunekit prunes by default: Linear and (transposed) Conv weights, minus ``exclude``.

    ``exclude`` holds module names (exact or glob patterns such as ``"classifier"`` or ``"*.fc"``)
    and module types. A weight shared by several modules is counted once.
    """
    exclude = tuple(exclude) if not isinstance(exclude, (str, type)) else (exclude,)
    found, seen, any_prunable = [], set(), False
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES) or not isinstance(module.weight, nn.Parameter):
            continue
        any_prunable = True
        if _excluded(name, module, exclude) or id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        found.append(Target(f"{name}.weight" if name else "weight", module, "weight"))
    if not any_prunable:
        raise NoPrunableLayersError(
            f"{type(model).__name__} has no prunable layer (Linear, Conv1d/2d/3d or ConvTranspose)"
        )
    if not found:
        raise NoPrunableLayersError(f"exclude={list(exclude)!r} excludes every prunable layer")
    return found


def _finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in ``t``: one reduction, with an exact check only if the sum overflows."""
    return bool(torch.isfinite(t.detach().sum())) or bool(torch.isfinite(t).all())


def _resolve_method(method: str | None, score: Any, scope: Any) -> tuple[Any, Any]:
    if method is None:
        return score or "magnitude", scope or "global"
    if method not in METHODS:
        raise PruneError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}")
    if score is not None or scope is not None:
        raise PruneError(f"method={method!r} already sets score and scope; pass either method or score/scope")
    return METHODS[method]


def sparsity_for_compression(model: nn.Module, targets: list[Target], compression: float) -> float:
    """The prunable fraction that makes all parameters / nonzero parameters equal ``compression``.

    Non-prunable parameters stay as they are (ShrinkBench's convention; their zeros, such as a fresh
    BatchNorm bias, count as zeros), so high ratios may be unreachable.
    """
    if not compression >= 1:
        raise InvalidSparsityError(f"compression must be >= 1 (got {compression})")
    params = list({id(p): p for p in model.parameters()}.values())
    prunable_ids = {id(t.param) for t in targets}
    total = sum(p.numel() for p in params)
    prunable_n = sum(t.param.numel() for t in targets)
    other_nonzero = sum(int(torch.count_nonzero(p)) for p in params if id(p) not in prunable_ids)
    fraction = 1 - (total / compression - other_nonzero) / prunable_n
    if fraction >= 1:
        limit = total / max(other_nonzero, 1)
        raise InvalidSparsityError(
            f"compression {compression} is unreachable: with {other_nonzero} nonzero parameters left dense "
            f"the highest possible is {limit:.2f}; lower it or prune more layer types"
        )
    return max(fraction, 0.0)


def _check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, (int, float)) or math.isnan(sparsity) or not 0 <= sparsity < 1:
        raise InvalidSparsityError(f"sparsity must be in [0, 1) (got {sparsity!r}); it is the final fraction pruned")
    return float(sparsity)


def prune(
    model: nn.Module,
    sparsity: float | None = None,
    *,
    compression: float | None = None,
    structure: str | structures.Structure = "weights",
    score: str | scores.Score | scores.GroupScore | None = None,
    scope: str | scopes.Scope | None = None,
    method: str | None = None,
    data: Any = None,
    loss_fn: Callable | None = None,
    exclude: Iterable[Any] = (),
    seed: int = 0,
    check_finite: bool = True,
    example_inputs: Any = None,
    macs_reduction: float | None = None,
    **graph_options: Any,
) -> Masks:
    """Prune ``model`` in place so that exactly ``round(sparsity × N)`` of its N prunable units are zero.

    ``sparsity`` is the final fraction, counted over the whole scope (never "of what remains");
    ``compression=c`` instead asks for all parameters / nonzero parameters ≈ c. Earlier masks are kept
    (pruning is monotone). Returns the model's masks; pruned weights stay zero through training.
    ``structure="channels"`` / ``"heads"`` traces the model on ``example_inputs`` and removes coupled
    units (see :func:`prunekit.graph.prune_structured` for ``macs_reduction`` and ``graph_options``).
    """
    if structure in ("channels", "heads"):
        from .graph import prune_structured

        if compression is not None or method is not None:
            raise PruneError(f"structure={structure!r} takes sparsity= or macs_reduction=, and score=/scope=")
        return prune_structured(model, sparsity, example_inputs=example_inputs, structure=structure, score=score,
                                scope=scope, macs_reduction=macs_reduction, data=data, loss_fn=loss_fn,
                                exclude=exclude, seed=seed, **graph_options)
    if example_inputs is not None or macs_reduction is not None or graph_options:
        raise PruneError("example_inputs=, macs_reduction= and graph options need structure='channels' or 'heads'")
    score, scope = _resolve_method(method, score, scope)
    nm = structures.parse(structure)
    structure = nm or structures.registry.get(structure)
    score = scores.registry.get(score)
    scope = scopes.registry.get(scope) if not isinstance(scope, dict) else scopes.PerLayer(scope)
    targets = prunable(model, exclude)
    for t in targets:
        structure.check(t.module, t.pname)
        if check_finite and not _finite(t.param):
            raise NonFiniteWeightsError(
                f"{t.qname} holds NaN or infinite values; fix the weights or pass check_finite=False"
            )
    if nm is not None:  # N:M selects inside each block of M, not by scope
        return structures.nm.prune_nm(model, nm, targets, sparsity, compression, score, scope, data, loss_fn, seed)
    if sparsity is not None and compression is not None:
        raise InvalidSparsityError("pass either sparsity or compression, not both")
    if compression is not None:
        sparsity = sparsity_for_compression(model, targets, compression)
    elif sparsity is None and scope.needs_sparsity:
        raise InvalidSparsityError("pass sparsity= (final fraction pruned) or compression=")
    if sparsity is not None:
        sparsity = _check_sparsity(sparsity)
    state = score.prepare(model, targets, data, loss_fn)

    def unit_scores(i: int, t: Target) -> Callable[[], Iterator[torch.Tensor]]:
        def fn() -> Iterator[torch.Tensor]:
            old = mask_of(t.module, t.pname)
            for rows in structure.row_chunks(t.module, t.pname, score.elementwise):
                with torch.no_grad():
                    s = score(t.param[rows], ScoreContext(t, i, seed, state, rows))
                    s = structure.unit_scores(s, t.module, score.reduce)
                    if old is not None:  # already pruned units go first: masks are monotone
                        s = s.masked_fill(structure.unit_mask(old[rows], t.module).logical_not(), -math.inf)
                yield s

        return fn

    fns = [unit_scores(i, t) for i, t in enumerate(targets)]
    sizes = [structure.num_units(t.module, t.pname) for t in targets]
    _check_monotone(targets, structure, sizes, scope, sparsity)
    with one_thread():  # chunked selection: many small memory-bound ops
        keeps = scope.select(fns, sizes, [t.qname for t in targets], sparsity)
    for t, keep in zip(targets, keeps):
        for pname, mask in structure.masks(keep.to(t.param.device), t.module, t.pname).items():
            attach(t.module, pname, mask, copy=False)
    return Masks.from_model(model)


def _check_monotone(targets, structure, sizes, scope, sparsity) -> None:
    """Refuse a target below what is already pruned: masks never grow back."""
    if not isinstance(scope, (scopes.Global, scopes.Layer)):
        return
    pruned = []
    for t in targets:
        old = mask_of(t.module, t.pname)
        pruned.append(0 if old is None else int((~structure.unit_mask(old, t.module)).sum()))
    groups = [(sum(pruned), sum(sizes))] if isinstance(scope, scopes.Global) else zip(pruned, sizes)
    for done, n in groups:
        if done > scopes.count(sparsity, n):
            raise InvalidSparsityError(
                f"the model already has {done}/{n} units pruned, more than sparsity {sparsity} asks for; "
                "masks only remove more — call pk.unprune(model) first to start over"
            )


def sparsity(model: nn.Module, exclude: Iterable[Any] = ()) -> float:
    """Fraction of the prunable weights (Linear/Conv weights, minus ``exclude``) that are exactly zero."""
    targets = prunable(model, exclude)
    total = sum(t.param.numel() for t in targets)
    zeros = sum(int((t.param == 0).sum()) for t in targets)
    return zeros / total
