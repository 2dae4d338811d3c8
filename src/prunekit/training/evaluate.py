"""Evaluation: top-1 / top-5 accuracy and mean loss, shared by the loop and its callbacks.

Outputs hold classes on their last dimension: ``(B, C)`` for a classifier, ``(B, T, V)`` for a
language model whose targets ``(B, T)`` are next tokens; a target of ``-100`` is not scored (see
:mod:`prunekit.losses`, whose cross-entropy is the default loss).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..data.base import batches
from ..errors import PruneError
from ..losses import cross_entropy, scored


def device_of(model: nn.Module, device: Any) -> torch.device:
    """``device`` if given, else the device of the model's first parameter (CPU for none)."""
    if device is not None:
        return torch.device(device)
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, data: Any, *, batch_size: int = 512, loss_fn: Callable | None = None,
             device: Any = None) -> dict[str, float]:
    """Top-1 and top-5 accuracy (fractions) and mean loss of ``model`` on a Dataset or DataLoader,
    per scored target (per token for a language model, whose ``exp(loss)`` is the perplexity)."""
    loss_fn = loss_fn or cross_entropy  # a mean-reduced loss, weighted back by its scored targets
    dev = device_of(model, device)
    was_training = model.training
    model.eval()
    n = correct1 = correct5 = 0
    loss = 0.0
    for x, y in batches(data, batch_size):
        x, y = x.to(dev), y.to(dev)
        out = model(x)
        count = scored(y)
        if count:
            loss += float(loss_fn(out, y)) * count
        hit = out.topk(min(5, out.shape[-1]), dim=-1).indices == y[..., None]
        correct1 += int(hit[..., 0].sum())
        correct5 += int(hit.any(-1).sum())
        n += count
    model.train(was_training)
    if n == 0:
        raise PruneError("cannot evaluate on an empty dataset")
    return {"top1": correct1 / n, "top5": correct5 / n, "loss": loss / n}
