"""Monte Carlo estimation of the output gap between a network and its pruned copies.

Pruned networks are built with ``pk.prune`` on deep copies, so the user's model is never touched and
any structure, score or per-layer ratios prunekit knows can be measured.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from .. import scores
from ..api import prune
from ..errors import PruneError
from ..inputs import check_module, check_number, check_seed
from ..masks import Masks
from .networks import draw_inputs
from ..threads import one_thread
from .report import GapReport

_SEED_STRIDE = 1_000_003
_PRUNE_OPTIONS = {"exclude", "data", "loss_fn", "check_finite"}
_SMALL = 1 << 20  # parameters below which one thread beats several (tiny matmuls, many of them)


def _threads_for(model: nn.Module) -> contextlib.AbstractContextManager:
    """Run a small model's many tiny forwards on one thread (thread synchronisation would dominate)."""
    return one_thread(sum(p.numel() for p in model.parameters()) < _SMALL)


def is_stochastic(score: Any) -> bool:
    """Whether different seeds give different masks (random scores), so mask draws must be averaged."""
    score = scores.registry.get(score)
    return isinstance(score, scores.Random) or bool(getattr(score, "stochastic", False))


def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    parts = []
    with torch.no_grad():
        for chunk in x.split(batch_size):
            try:
                out = model(chunk)
            except RuntimeError as err:
                raise PruneError(
                    f"the model cannot run on inputs of shape {tuple(chunk.shape[1:])} ({err}); "
                    "pass inputs (or input_shape=) that fit it"
                ) from None
            if not isinstance(out, torch.Tensor):
                raise PruneError(f"the model returned {type(out).__name__}; gap analysis needs a tensor output")
            parts.append(out.flatten(1).double())
    return torch.cat(parts)


class Evaluator:
    """Fixed inputs, reference outputs and mask seeds, evaluated at many sparsities (for bisection).

    ``inputs`` is a tensor (the same inputs in every trial) or a distribution name ("gaussian",
    "uniform", "sphere"); then each trial draws ``n_inputs`` fresh inputs of ``input_shape``.
    Random scores use ``trials`` mask draws (seeded from ``seed``); ``prune_options`` go to ``pk.prune``.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor | str = "gaussian",
        *,
        score: Any = "magnitude",
        structure: Any = "weights",
        scope: Any = None,
        trials: int | None = None,
        rescale: bool = False,
        n_inputs: int = 256,
        input_shape: Sequence[int] | None = None,
        seed: int = 0,
        confidence: float = 0.95,
        batch_size: int = 1024,
        **prune_options: Any,
    ):
        check_module(model)
        check_seed(seed)
        check_number(n_inputs, "n_inputs", low=1, integer=True)
        check_number(batch_size, "batch_size", low=1, integer=True)
        check_number(confidence, "confidence", low=0, high=1, low_open=True, high_open=True)
        self.stochastic = is_stochastic(score)
        if trials is None:
            trials = 32 if self.stochastic else 1
        if trials < 1 or (not self.stochastic and trials != 1):
            raise PruneError(
                f"trials={trials}: a deterministic score ({score!r}) gives the same mask every time, so use "
                "trials=1 and more inputs (n_inputs) instead; random scores need trials >= 1"
            )
        self.base = copy.deepcopy(model).eval()
        self.score, self.structure, self.scope = score, structure, scope
        self.trials, self.rescale, self.seed = trials, rescale, seed
        self.confidence, self.batch_size = confidence, batch_size
        unknown = sorted(set(prune_options) - _PRUNE_OPTIONS)
        if unknown:
            raise PruneError(
                f"unknown gap option(s) {', '.join(unknown)}; besides the estimator's own options, "
                f"only {', '.join(sorted(_PRUNE_OPTIONS))} (passed to pk.prune) are accepted"
            )
        self.prune_options = prune_options
        if isinstance(inputs, str):
            shape = input_shape or getattr(model, "input_shape", None)
            if shape is None:
                raise PruneError("inputs drawn from a distribution need input_shape= (the shape of one input)")
            self._draw = lambda t: draw_inputs(shape, n_inputs, inputs, seed=seed * _SEED_STRIDE + t)
        elif isinstance(inputs, torch.Tensor) and inputs.dim() >= 1 and len(inputs) > 0:
            self._draw = lambda t: inputs
        else:
            raise PruneError("inputs must be a non-empty tensor of inputs or a distribution name such as 'gaussian'")
        self.fresh = isinstance(inputs, str) and trials > 1
        with _threads_for(self.base):
            self.refs = [_outputs(self.base, self._draw(t), batch_size) for t in range(trials if self.fresh else 1)]

    def _trial_inputs(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        for t in range(self.trials):
            i = t if self.fresh else 0
            yield t, self._draw(i), self.refs[i]

    def pruned(self, sparsity: float | Mapping[str, float], trial: int = 0) -> nn.Module:
        """A pruned (and, if asked, rescaled) deep copy of the model for one mask draw."""
        model = copy.deepcopy(self.base)
        per_layer = isinstance(sparsity, Mapping)
        prune(
            model, None if per_layer else sparsity, structure=self.structure, score=self.score,
            scope=dict(sparsity) if per_layer else self.scope, seed=self.seed * _SEED_STRIDE + trial,
            **{"allow_collapse": True, **self.prune_options},  # a collapsed layer is measured as a large gap
        )
        if self.rescale:
            with torch.no_grad():
                for qname, mask in Masks.from_model(model).items():
                    kept = mask.float().mean()
                    if 0 < kept < 1:
                        model.get_parameter(qname).div_(kept)
        return model

    def __call__(self, sparsity: float | Mapping[str, float]) -> GapReport:
        rows: dict[str, list[torch.Tensor]] = {"l2": [], "linf": [], "ref_l2": [], "ref_linf": []}
        with _threads_for(self.base):
            for t, x, ref in self._trial_inputs():
                model = self.pruned(sparsity, t)
                diff = _outputs(model, x, self.batch_size) - ref
                rows["l2"].append(diff.norm(dim=1))
                rows["linf"].append(diff.abs().amax(dim=1))
                rows["ref_l2"].append(ref.norm(dim=1))
                rows["ref_linf"].append(ref.abs().amax(dim=1))
        masks = Masks.from_model(model)
        layers = {q: 1.0 - float(m.float().mean()) for q, m in masks.items()}
        return GapReport(
            sparsity=sparsity, achieved=masks.sparsity, score=str(getattr(self.score, "name", self.score)),
            over="masks" if self.stochastic else "inputs", confidence=self.confidence, layers=layers,
            **{k: torch.stack(v) for k, v in rows.items()},
        )


def gap(model: nn.Module, inputs: torch.Tensor | str = "gaussian", *, sparsity: float | Mapping[str, float],
        **options: Any) -> GapReport:
    """Estimate the gap ‖F(x) − F_pruned(x)‖ (L2 and L∞, absolute and relative) of pruning ``model``.

    ``sparsity`` is a fraction (with ``scope=``, default global) or per-layer ratios ``{"fc1": 0.9}``.
    Options (see :class:`Evaluator`): ``score`` ("magnitude"; "random" averages ``trials`` mask draws,
    default 32), ``structure``, ``scope``, ``rescale`` (multiply each layer's survivors by
    1/(1 − its sparsity)), ``n_inputs`` and ``input_shape`` for inputs drawn from a distribution
    (random networks carry their shape), ``seed``, ``confidence``, ``batch_size``; anything else
    (``exclude``, ``data``, ``loss_fn``) goes to ``pk.prune``.
    """
    return Evaluator(model, inputs, **options)(sparsity)
