"""SynFlow: data-free iterative synaptic flow (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError, MissingDataError
from .base import Score, ScoreContext, Target, register


def ones_like_one(inputs: Any) -> Any:
    """An all-ones input of one sample shaped like the first sample of ``inputs`` (a tensor, tuple or list)."""
    if isinstance(inputs, torch.Tensor):
        if not inputs.is_floating_point():
            raise MissingDataError("SynFlow feeds an all-ones input: example_inputs= must be floating point "
                                   f"(got {inputs.dtype}); token ids have no all-ones equivalent")
        if inputs.dim() == 0:
            raise MissingDataError("example_inputs= must be a batch (first dimension = samples), not a scalar")
        return torch.ones_like(inputs[:1])
    if isinstance(inputs, (tuple, list)) and inputs:
        return type(inputs)(ones_like_one(t) for t in inputs)
    raise MissingDataError("score 'synflow' needs example_inputs= (a batch of inputs, or a tuple of them)")


def synaptic_flow(model: nn.Module, targets: list[Target], inputs: Any) -> dict[str, torch.Tensor]:
    """|θ ⊙ ∂R/∂θ| for each target, R = 1ᵀ f(1; |θ|): every parameter and float buffer is made positive
    for one forward and backward pass in eval mode, then restored exactly (signs kept aside)."""
    ones = ones_like_one(inputs)
    state = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    state = list({id(t): t for t in state}.values())
    signs = [torch.signbit(t.detach()) for t in state]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for t in state:
                t.abs_()
        out = model(*ones) if isinstance(ones, (tuple, list)) else model(ones)
        r = out.sum()
        if not torch.isfinite(r):
            raise MissingDataError(f"SynFlow's R = {r.item()} is not finite; the network is too deep or wide for "
                                   f"{r.dtype}: run the model in float64 to score it")
        params = [t.param for t in targets]
        grads = torch.autograd.grad(r, params, allow_unused=True)
        return {t.qname: (t.param.detach() * g).abs() if g is not None else torch.zeros_like(t.param)
                for t, g in zip(targets, grads)}
    finally:
        with torch.no_grad():
            for t, negative in zip(state, signs):
                t.copy_(torch.where(negative, -t.abs(), t.abs()))
        model.train(was_training)


@register("synflow")
class SynFlow(Score):
    """Synaptic saliency |θ ⊙ ∂R/∂θ| with R = 1ᵀ(∏_l |W_l|)1, on an all-ones input; data-free, iterative.

    Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving synaptic
    flow". For a bias-free ReLU network every layer's scores sum to R (conservation), so a layer's
    share of the total grows as it is pruned, and pruning in ``rounds`` (100 by default, the paper's)
    to exponentially growing sparsities, rescoring each time, reaches the maximal compression without
    emptying a layer; ``rounds=1`` is the one-shot variant, which loses that guarantee. The engine
    runs the rounds (see :mod:`prunekit.iterative`). The input is an all-ones sample shaped like
    ``example_inputs``; parameters and float buffers are made positive for scoring, then restored.
    BatchNorm runs in eval mode (its running statistics made positive too, as in the authors' code).
    """

    needs_example_inputs = True

    def __init__(self, rounds: int = 100):
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise InvalidArgumentError(f"rounds must be a positive integer (got {rounds!r})")
        self.rounds = rounds

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return synaptic_flow(model, targets, data)

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return context.state[context.target.qname][context.rows]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rounds={self.rounds})"
