"""Wanda: weight magnitude times input activation norm (Sun et al. 2023, arXiv:2306.11695)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import calibration
from .base import Score, ScoreContext, Target, register


@register("wanda")
class Wanda(Score):
    """|W_ij| · ‖X_j‖₂, with X_j input j of the layer over every calibration row (token, patch).

    "A Simple and Effective Pruning Approach for Large Language Models" (Sun, Liu, Bair, Kolter 2023).
    The paper compares scores within each output row: use ``scope="row"``; ``"layer"``, per-layer
    ratios and N:M (``structure="2:4"``, compared within each block of M inputs) work too, and so does
    ``"global"`` although the norms of different layers are not on one scale. The norms come from one
    pass of ``data`` through the unpruned model (inputs only; labels are ignored), streamed batch by
    batch. Weights are not changed. ``min_samples``: the fewest input rows each layer must see.
    """

    needs_data = True
    needs_calibration = True

    def __init__(self, min_samples: int = 1, progress: bool | None = None):
        self.min_samples, self.progress = min_samples, progress

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        batches = calibration.batches(data)
        calibration.check_fits(model, batches)
        layers = calibration.layer_names(model, [t.module for t in targets])
        with calibration.progress_bar(self.progress, len(batches), "wanda: calibrating") as tick:
            stats = calibration.collect(model, layers, batches, calibration.ColumnNorms,
                                        min_samples=self.min_samples, progress=tick)
        norms = {id(layers[n]): s.result() for n, s in stats.items()}
        return {t.qname: norms[id(t.module)].view(t.param.shape[1:]) for t in targets}

    def __call__(self, weight: torch.Tensor, context: ScoreContext) -> torch.Tensor:
        norms = context.state[context.target.qname]
        return weight.detach().float().abs() * norms  # float32: a float16 norm overflows on outlier features

    def __repr__(self) -> str:
        return f"Wanda(min_samples={self.min_samples})"
