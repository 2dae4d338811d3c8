"""Gradient magnitude |w · ∂L/∂w| on user data (the first-order Taylor estimate of a weight's effect)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import MissingDataError
from ..losses import cross_entropy
from .base import Score, ScoreContext, Target, register


def batches(data: Any) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """A single ``(x, y)`` batch or an iterable of them, as an iterable of batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
        isinstance(t, torch.Tensor) for t in data
    ):
        return [tuple(data)]
    return data


def accumulate_gradients(
    model: nn.Module, targets: list[Target], data: Any, loss_fn: Callable | None
) -> dict[str, torch.Tensor]:
    """Gradients of the mean loss over ``data`` for each target, leaving the model's own grads as found.

    The model runs in eval mode (BatchNorm statistics are not updated) and returns to its mode after.
    """
    if data is None:
        raise MissingDataError(
            "this score needs data: pass data=(x, y) or an iterable of (x, y) batches"
        )
    loss_fn = loss_fn or cross_entropy
    params = [t.param for t in targets]
    saved = [p.grad for p in params]
    grads = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    device = params[0].device
    n = 0
    try:
        for x, y in batches(data):
            for p in params:
                p.grad = None
            loss = loss_fn(model(x.to(device)), y.to(device))
            got = torch.autograd.grad(loss, params, allow_unused=True)
            for acc, g in zip(grads, got):
                if g is not None:
                    acc.add_(g)
            n += 1
    finally:
        model.train(was_training)
        for p, g in zip(params, saved):
            p.grad = g
    if n == 0:
        raise MissingDataError("data yielded no batches; gradient scores need at least one (x, y)")
    return {t.qname: g / n for t, g in zip(targets, grads)}


@register("gradient")
class Gradient(Score):
    """|w · ∂L/∂w| averaged over the given batches; per unit, the sum over the unit."""

    needs_data = True
    needs_loss = True

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return accumulate_gradients(model, targets, data, loss_fn)

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return (weight.detach() * context.state[context.target.qname][context.rows]).abs()


@register("taylor")
class Taylor(Gradient):
    """First-order Taylor importance of a unit, Σ|w·∂L/∂w| over its weights (Molchanov et al. 2019)."""
