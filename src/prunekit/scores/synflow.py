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


def _is_shift(name: str) -> bool:
    """A bias or a BatchNorm running mean: a term that adds to a layer's output instead of scaling it."""
    return name.rpartition(".")[2] in ("bias", "running_mean")


def synaptic_flow(model: nn.Module, targets: list[Target], inputs: Any, biases: bool = False) -> dict[str, torch.Tensor]:
    """|θ ⊙ ∂R/∂θ| for each target, R = 1ᵀ f(1; |θ|) in eval mode: every parameter and float buffer is made
    positive for one forward and backward pass, biases and running means set to 0 unless ``biases``
    (R is then homogeneous of degree 1 in every layer's weights: the conservation law), then all are
    restored exactly."""
    ones = ones_like_one(inputs)
    named = [*model.named_parameters(), *model.named_buffers()]
    state = list({id(t): (n, t) for n, t in named if t.is_floating_point()}.values())
    saved = [t.detach().clone() if _is_shift(n) else torch.signbit(t.detach()) for n, t in state]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for n, t in state:
                if _is_shift(n) and not biases:
                    t.zero_()
                else:
                    t.abs_()
        out = model(*ones) if isinstance(ones, (tuple, list)) else model(ones)
        r = out.sum()
        if not torch.isfinite(r):
            raise MissingDataError(f"SynFlow's R = {r.item()} is not finite; the network is too deep or wide for "
                                   f"{r.dtype}: run the model in float64 to score it")
        grads = torch.autograd.grad(r, [t.param for t in targets], allow_unused=True)
        return {t.qname: (t.param.detach() * g).abs() if g is not None else torch.zeros_like(t.param)
                for t, g in zip(targets, grads)}
    finally:
        with torch.no_grad():
            for (n, t), old in zip(state, saved):
                t.copy_(old if _is_shift(n) else torch.where(old, -t.abs(), t.abs()))
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
    ``example_inputs`` (``data=`` is ignored); parameters and float buffers are made positive for scoring, then restored.
    Biases and BatchNorm running means are set to 0 while scoring (``biases=False``, the default), so
    that R is the paper's product of |W| and the conservation law holds for networks with biases and
    BatchNorm too; ``biases=True`` keeps them as |b|, as the authors' code does — at high compression
    the bias flow then outweighs the input's, and iterative SynFlow can empty early layers (measured in
    bench/init_pruning.py). BatchNorm runs in eval mode.
    """

    needs_example_inputs = True
    data_free = True

    def __init__(self, rounds: int = 100, biases: bool = False):
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise InvalidArgumentError(f"rounds must be a positive integer (got {rounds!r})")
        self.rounds, self.biases = rounds, bool(biases)

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return synaptic_flow(model, targets, data, self.biases)

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return context.state[context.target.qname][context.rows]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rounds={self.rounds}, biases={self.biases})"
