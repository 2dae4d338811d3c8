"""prune / sparsity: a thin composition of structure × score × scope → masks (run by ``prunekit.engine``)."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from torch import nn

from . import iterative, scores, structures
from . import scope as scopes
from .engine import sparsity_for_compression
from .errors import InvalidSparsityError, PruneError
from .inputs import check_data, check_forward, check_module, check_seed
from .masks import Masks
from .names import Matcher
from .structures import PRUNABLE_TYPES, prunable
from .structures.tensors import locked_weights

METHODS: dict[str, tuple[str, str]] = {
    "global-magnitude": ("magnitude", "global"),
    "layer-magnitude": ("magnitude", "layer"),
    "global-gradient": ("gradient", "global"),
    "layer-gradient": ("gradient", "layer"),
    "random": ("random", "layer"),
}

__all__ = ["prune", "sparsity", "prunable", "sparsity_for_compression", "METHODS", "PRUNABLE_TYPES"]


def _resolve_method(method: str | None, score: Any, scope: Any) -> tuple[Any, Any]:
    if method is None:
        return score or "magnitude", scope if scope is not None else "global"
    if method not in METHODS:
        raise PruneError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}")
    if score is not None or scope is not None:
        raise PruneError(f"method={method!r} already sets score and scope; pass either method or score/scope")
    return METHODS[method]


def _structure(spec: Any, options: dict[str, Any]) -> structures.Structure:
    """A structure object from a name (``"N:M"`` included) or object, built with its keyword ``options``."""
    if isinstance(spec, (list, tuple)):
        return structures.mixed.from_list(spec, options)
    nm = structures.parse(spec)
    if nm is not None or isinstance(spec, structures.Structure):
        if options:
            raise PruneError(f"options {sorted(options)} only go with a structure given by name")
        return nm or spec
    if not options:
        return structures.registry.get(spec)
    try:
        return structures.registry.get(spec, **options)
    except TypeError:
        raise PruneError(
            f"structure {spec!r} takes no option {', '.join(sorted(options))}; options such as max_ratio=, "
            "round_to=, reduce= and normalize= go with structure='channels' or 'heads'"
        ) from None


def _scope(spec: Any, structure: structures.Structure) -> scopes.Scope:
    """The scope object: a name, a Scope, or a dict of per-layer ratios; N:M requires its block-local scope."""
    if structure.scope is not None:
        if spec not in (None, "global", "layer") and not isinstance(spec, (scopes.Global, scopes.Layer)):
            raise PruneError(f"structure {structure.name!r} brings its own scope ({structure.scope!r}); omit scope")
        return structure.scope
    if isinstance(spec, dict):
        return scopes.PerLayer(spec)
    return scopes.registry.get(spec)


def _fixed_sparsity(structure: structures.Structure, sparsity: float | None, compression: float | None) -> float:
    if compression is not None:
        raise InvalidSparsityError(f"structure {structure.name!r} fixes sparsity at {structure.sparsity:g}; omit compression")
    if sparsity is not None and not math.isclose(sparsity, structure.sparsity, abs_tol=1e-9):
        raise InvalidSparsityError(
            f"structure {structure.name!r} prunes exactly {structure.sparsity:g}; omit sparsity or pass {structure.sparsity:g}"
        )
    return structure.sparsity


def prune(
    model: nn.Module,
    sparsity: float | None = None,
    *,
    compression: float | None = None,
    structure: str | structures.Structure = "weights",
    score: str | scores.Score | None = None,
    scope: str | scopes.Scope | dict | None = None,
    method: str | None = None,
    data: Any = None,
    loss_fn: Callable | None = None,
    exclude: Iterable[Any] = (),
    seed: int = 0,
    check_finite: bool = True,
    example_inputs: Any = None,
    macs_reduction: float | None = None,
    latency_reduction: float | None = None,
    prune_outputs: Iterable[Any] | bool = (),
    allow_collapse: bool = False,
    **options: Any,
) -> Masks:
    """Prune ``model`` in place so that exactly ``round(sparsity × N)`` of its N prunable units are zero.

    ``sparsity`` is the final fraction, counted over the whole scope (never "of what remains");
    ``compression=c`` instead asks for all parameters / nonzero parameters ≈ c. Earlier masks are kept
    (pruning is monotone). Returns the model's masks; pruned weights stay zero through training.

    ``structure``: any registered structure — ``"weights"``, ``"neurons"``, ``"2:4"`` (any ``"N:M"``),
    ``"channels"`` and ``"heads"`` (these trace the model on ``example_inputs``, take
    ``macs_reduction=`` and the options ``max_ratio``, ``round_to``, ``reduce``, ``normalize``),
    ``"blocks"`` (whole residual blocks / Transformer layers, scored by ``block-influence``,
    ``skip-loss``, ``branch-norm`` or ``random``) and ``["blocks", "channels"]`` (width and depth
    toward one target; options ``depth_share``, ``block_score``). ``latency_reduction=`` is a
    measured speedup of the compacted model on ``example_inputs``: it holds for this machine, thread
    count and batch only.
    ``score``: any registered score (magnitude, l1, l2, gradient/taylor/snip/grasp/grasp-abs with
    ``data=``, synflow with ``example_inputs=``, random, bn-scale, fpgm, wanda/sparsegpt with
    calibration inputs as ``data=``). Scores that take a loss use ``loss_fn`` or, by default, the training
    loop's cross-entropy (:mod:`prunekit.losses`): classes on the last dimension, so a language model's
    ``(B, T, V)`` logits with ``(B, T)`` next-token targets work, and targets of -100 are skipped.
    ``scope``: ``"global"``,
    ``"layer"``, ``"row"`` (the same fraction in every output row) or per-layer ratios ``{name: ratio}``.
    ``exclude`` and per-layer keys are :mod:`prunekit.names` rules (a module name covers its
    submodules; a name that matches nothing raises). Neuron, channel and head pruning keep the
    model's output layers whole (see :mod:`prunekit.outputs`) unless named in ``prune_outputs``
    (names, globs, types, or True for all). A selection that would empty a whole layer raises
    :class:`LayerCollapseError` naming it, unless ``allow_collapse=True`` (see :mod:`prunekit.collapse`).
    """
    check_module(model)
    seed = check_seed(seed)
    structure = _structure(structure, options)
    score, scope = _resolve_method(method, score, scope)
    score = scores.registry.get(score)
    if example_inputs is not None and not (structure.uses_example_inputs or score.needs_example_inputs):
        raise PruneError(f"example_inputs= are for structure='neurons', 'channels' or 'heads' or a score that "
                         f"needs them (synflow), not structure {structure.name!r} with score {score.name!r}")
    for key, value in (("macs_reduction", macs_reduction), ("latency_reduction", latency_reduction)):
        if value is not None and not (hasattr(structure, "macs") or hasattr(structure, "combine")):
            raise PruneError(f"{key}= needs structure='channels', 'heads' or 'blocks', not {structure.name!r}")
    targets = [v for v in (sparsity, compression, macs_reduction, latency_reduction) if v is not None]
    scope = _scope(scope, structure)
    if structure.sparsity is not None:
        sparsity = _fixed_sparsity(structure, sparsity, compression)
    elif len(targets) > 1:
        raise InvalidSparsityError("pass one of sparsity=, compression=, macs_reduction= or latency_reduction=, not several")
    elif not targets and scope.needs_sparsity:
        raise InvalidSparsityError("pass sparsity= (final fraction pruned), compression=, macs_reduction= or "
                                   "latency_reduction=")
    if sparsity is not None:
        sparsity = scopes.check_ratio(sparsity, "sparsity")
    if example_inputs is not None:
        check_forward(model, example_inputs)
    if data is not None and not score.needs_calibration:  # calibration checks its inputs itself, naming the layer
        check_data(model, data)
    ctx = structures.Context(model, Matcher(model, exclude), _outputs(model, prune_outputs), example_inputs, seed)
    return iterative.run(structure, score, scope, ctx, sparsity, compression=compression,
                         macs_reduction=macs_reduction, data=data, loss_fn=loss_fn, check_finite=check_finite,
                         allow_collapse=allow_collapse, latency_reduction=latency_reduction)


def _outputs(model: nn.Module, spec: Iterable[Any] | bool) -> Matcher | bool:
    return spec if isinstance(spec, bool) else Matcher(model, spec, "prune_outputs")


def sparsity(model: nn.Module, exclude: Iterable[Any] = ()) -> float:
    """Fraction of the prunable weights (see :func:`prunable`, minus ``exclude``) that are exactly zero.

    Parametrized weights that pruning leaves dense (an unknown parametrization) count too, as they compute: the
    value never claims a target reached while a layer was skipped.
    """
    targets = prunable(model, exclude)
    tensors = [t.param for t in targets] + locked_weights(model, PRUNABLE_TYPES, Matcher(model, exclude))
    total = sum(t.numel() for t in tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return zeros / total
