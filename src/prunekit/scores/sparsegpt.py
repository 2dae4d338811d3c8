"""SparseGPT: one-shot pruning by layer-wise OBS reconstruction (Frantar & Alistarh 2023, arXiv:2301.00774)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import calibration
from .. import scope as scopes
from ..errors import InvalidSparsityError, PruneError
from ..masks import mask_of
from ..threads import one_thread
from .base import Score, ScoreContext, Target, register
from .obs import Pattern, inverse_factor, reconstruct, saliency


@register("sparsegpt")
class SparseGPT(Score):
    """Prunes each layer so that its output on calibration data changes least, **updating the surviving weights**.

    "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot" (Frantar & Alistarh 2023).
    Per layer, H = 2XXᵀ/n of its calibration inputs (streamed) is damped by ``damp`` × mean diag(H);
    columns are visited in lazy blocks of ``block``; within a block the weights with the lowest
    w²/[H⁻¹]_qq² are pruned (exactly the layer's share, or M − N of every M for N:M) and the error is
    compensated on the columns not yet visited. Layers go in the order the forward calls them, each
    seeing inputs from the already pruned (and updated) layers before it; layers that share one input
    tensor (q, k, v) share one calibration pass, so the data runs through the model once per group
    (each pass ends as soon as the group has its inputs, unless a layer runs more than once per forward).

    Because it changes weights while choosing them, SparseGPT decides each layer's mask itself: the
    engine's scope then selects exactly that mask. Scopes: ``"layer"`` (the same fraction per layer),
    ``"row"`` (per output row), per-layer ratios ``{name: ratio}``, and N:M structures (``"2:4"``).
    ``"global"`` (one threshold over layers not yet reconstructed) and whole-unit structures raise.
    Masks are exact and monotone: weights already pruned stay pruned and count toward the target.
    Linear and Conv1d/Conv2d (groups=1) layers; ``min_samples``: the fewest input rows a layer must see.
    """

    needs_data = True
    needs_calibration = True

    def __init__(self, damp: float = 0.01, block: int = 128, min_samples: int = 1, progress: bool | None = None):
        if not damp > 0 or not block >= 1:
            raise PruneError(f"SparseGPT needs damp > 0 and block >= 1 (got damp={damp}, block={block})")
        self.damp, self.block, self.min_samples, self.progress = damp, int(block), min_samples, progress
        self._patterns: dict[str, Pattern] | None = None

    def plan(self, parts: list, structure: Any, scope: Any, sparsity: float | None) -> None:
        """Each layer's pattern from the scope (checked against existing masks before any weight changes)."""
        self._patterns = {}
        for p in parts:
            t = p.targets[0]
            if len(p.targets) != 1 or p.size != t.param.numel() or t.param.dim() < 2:
                raise PruneError(f"SparseGPT prunes single weights (structure='weights' or 'N:M'), not {structure.name!r}")
            pattern = _pattern(p, t, scope, sparsity)
            _check_existing(t, pattern)
            self._patterns[t.qname] = pattern

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        if self._patterns is None:
            raise PruneError("SparseGPT runs inside pk.prune (it needs the scope's sparsity per layer)")
        patterns, self._patterns = self._patterns, None
        batches = calibration.batches(data)
        calibration.check_fits(model, batches)
        layers = calibration.layer_names(model, [t.module for t in targets])
        by_module = {id(t.module): t for t in targets}
        groups, once = calibration.order(model, layers, batches[0])
        state: dict[str, torch.Tensor] = {}
        with calibration.progress_bar(self.progress, len(batches) * len(groups), "sparsegpt") as tick:
            for group in groups:
                stats = calibration.collect(model, {n: layers[n] for n in group}, batches, calibration.Gram,
                                            min_samples=self.min_samples, progress=tick, stop=once >= set(group))
                for name in group:
                    t = by_module[id(layers[name])]
                    state[t.qname] = self._layer(name, t, stats[name].result(), patterns[t.qname])
        return state

    def _layer(self, name: str, t: Target, h: torch.Tensor, pattern: Pattern) -> torch.Tensor:
        """Reconstruct one layer in place; its scores: OBS saliency for survivors, −1 for the pruned."""
        param = t.param
        w = param.detach().reshape(param.shape[0], -1).float()
        perm = _nm_order(param) if pattern.m is not None and param.dim() > 2 else None
        if perm is not None:
            w, h = w[:, perm], h[perm][:, perm]
        old = mask_of(t.module, t.pname)
        pre = None if old is None else ~old.reshape(w.shape[0], -1)
        if pre is not None and perm is not None:
            pre = pre[:, perm]
        try:
            hinv = inverse_factor(h, self.damp)
        except torch.linalg.LinAlgError:
            raise PruneError(f"layer {name!r}: its calibration Hessian is not positive definite even with "
                             f"damp={self.damp}; raise damp or check the data for NaN") from None
        with one_thread():  # thousands of column-sized ops: two threads stall each other on a busy CPU
            w, pruned = reconstruct(w, hinv, pattern, pre, self.block)
        score = saliency(w, hinv).masked_fill_(pruned, -1.0)
        if perm is not None:
            inv = torch.argsort(perm)
            w, score = w[:, inv], score[:, inv]
        with torch.no_grad():
            param.copy_(w.view_as(param))
        return score.view_as(param)

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return context.state[context.target.qname][context.rows]

    def __repr__(self) -> str:
        return f"SparseGPT(damp={self.damp}, block={self.block})"


def _pattern(part: Any, t: Target, scope: Any, sparsity: float | None) -> Pattern:
    """What the scope will ask of this layer, as a pattern the reconstruction meets exactly."""
    if isinstance(scope, scopes.BlockLocal):
        return Pattern(n=scope.n, m=scope.m)
    if sparsity is None and not isinstance(scope, scopes.PerLayer):
        raise InvalidSparsityError("SparseGPT needs sparsity= (or compression=); macs_reduction= is not supported")
    if isinstance(scope, scopes.Row):
        return Pattern(per_row=scopes.count(sparsity, t.param[0].numel()))
    if isinstance(scope, scopes.PerLayer):
        ratio = scopes.check_ratio(scope.ratio(part, sparsity), f"the ratio for {part.name!r}")
        return Pattern(count=scopes.count(ratio, part.size))
    if isinstance(scope, scopes.Layer):
        return Pattern(count=scopes.count(sparsity, part.size))
    raise PruneError(f"SparseGPT sets each layer's sparsity as it reconstructs it: use scope='layer', 'row', "
                     f"per-layer ratios or an N:M structure, not {scope!r}")


def _check_existing(t: Target, pattern: Pattern) -> None:
    """Refuse a pattern the existing mask already exceeds: masks only remove more."""
    old = mask_of(t.module, t.pname)
    if old is None:
        return
    gone = ~old.reshape(old.shape[0], -1)
    if pattern.count is not None:
        over = int(gone.sum()) > pattern.count
    elif pattern.per_row is not None:
        over = bool((gone.sum(1) > pattern.per_row).any())
    else:
        over = bool((gone[:, _nm_order(old)].reshape(-1, pattern.m).sum(1) > pattern.m - pattern.n).any())
    if over:
        raise InvalidSparsityError(f"{t.qname} already has more weights pruned than this SparseGPT pattern "
                                   "keeps; masks only remove more — call pk.unprune(model) first to start over")


def _nm_order(weight: torch.Tensor) -> torch.Tensor:
    """Column order that puts the N:M structure's blocks (M input channels at one kernel position) side by side."""
    channels = weight.shape[1]
    return torch.arange(weight[0].numel(), device=weight.device).view(channels, -1).t().reshape(-1)
