"""The default loss of training, evaluation and every score that differentiates or measures a loss.

Outputs hold classes on their last dimension: ``(B, C)`` for a classifier, ``(B, T, V)`` for a
language model whose targets ``(B, T)`` are next tokens; a target of :data:`IGNORE` is not scored.
One definition, so a gradient score ranks weights by the very loss the model is trained on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # a target that is not scored (torch's ignore_index)


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over scored targets, classes on the last dimension of ``out``."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE)


def scored(y: torch.Tensor) -> int:
    """How many targets of ``y`` are scored (one per example for a classifier, per token for an LM)."""
    return int((y != IGNORE).sum())
