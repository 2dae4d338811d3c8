"""GraSP: keep the weights whose removal would most reduce gradient flow (Wang, Zhang & Grosse, ICLR 2020)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import MissingDataError
from ..losses import cross_entropy
from .base import Score, ScoreContext, Target, register
from .gradient import accumulate_gradients, batches


def hessian_gradient(model: nn.Module, targets: list[Target], data: Any, loss_fn: Callable | None,
                     temperature: float) -> dict[str, torch.Tensor]:
    """H g for each target by double backpropagation: g = ∂L/∂θ, then Hg = ∂(gᵀ stop(g))/∂θ, L on logits / T.

    Both passes average over the batches of ``data``; the model runs in eval mode and its grads are left as found.
    Attention runs on its plain (math) kernel, the one with second derivatives (causal LMs, Transformers).
    """
    loss_fn = loss_fn or cross_entropy

    def scaled(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(out / temperature, y)

    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no second derivative
        g = accumulate_gradients(model, targets, data, scaled)
        params = [t.param for t in targets]
        fixed = [g[t.qname] for t in targets]
        hg = [torch.zeros_like(p) for p in params]
        was_training, device, n = model.training, params[0].device, 0
        model.eval()
        try:
            for x, y in batches(data):
                grads = torch.autograd.grad(scaled(model(x.to(device)), y.to(device)), params, create_graph=True,
                                            allow_unused=True)
                z = sum((gi * fi).sum() for gi, fi in zip(grads, fixed) if gi is not None)
                if not isinstance(z, torch.Tensor) or not z.requires_grad:
                    raise MissingDataError("the loss does not depend on the prunable weights; "
                                           "GraSP needs a loss through them")
                for acc, h in zip(hg, torch.autograd.grad(z, params, allow_unused=True)):
                    if h is not None:
                        acc.add_(h)
                n += 1
        finally:
            model.train(was_training)
    return {t.qname: h / n for t, h in zip(targets, hg)}


@register("grasp")
class GraSP(Score):
    """Importance θ ⊙ Hg, H the Hessian and g the gradient of the loss on ``data`` (logits divided by T).

    Wang, Zhang & Grosse 2020, "Picking Winning Tickets Before Training by Preserving Gradient Flow".
    Sign convention: the paper scores S(−θ) = −θ ⊙ Hg and removes the weights with the *largest* S
    (removing them reduces the gradient norm ‖g‖² least, or raises it). prunekit drops the lowest
    scores, so this score is θ ⊙ Hg = −S: the same weights go. Scores are signed, and a unit's score is
    the signed sum over its weights. ``temperature`` T = 200 divides the logits, as in the authors'
    code. Needs the second derivatives of the model (double backprop through every layer).
    """

    needs_data = True
    needs_loss = True

    def __init__(self, temperature: float = 200.0):
        self.temperature = temperature

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return hessian_gradient(model, targets, data, loss_fn, self.temperature)

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return weight.detach() * context.state[context.target.qname][context.rows]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(temperature={self.temperature:g})"


@register("grasp-abs")
class GraSPMagnitude(GraSP):
    """|θ ⊙ Hg|: GraSP's magnitude, which Frankle et al. 2021 ("Pruning Neural Networks at Initialization:
    Why are We Missing the Mark?") found prunes at least as well as the signed score."""

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        return super().__call__(weight, context).abs()
