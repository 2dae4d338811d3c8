"""Whole neurons / filters as units: a row of a Linear weight or an output filter of a conv, with its bias."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from ..scores import Score, ScoreContext, by_slice, reduce_units
from .base import TRANSPOSED, TensorStructure, register


@register("neurons")
class Neurons(TensorStructure):
    """A whole output unit: a row of a Linear weight or an output filter of a conv, with its bias.

    A model's output layers stay whole (their units are its outputs: classes, logits, vocabulary)
    unless named in ``prune_outputs``. Units are only zeroed here; ``pk.compact`` removes them.
    """

    removes_outputs = True
    uses_example_inputs = True  # they locate the output layers (see prunekit.outputs)

    def _axis(self, module: nn.Module) -> int:
        return 1 if isinstance(module, TRANSPOSED) else 0

    def rows_are_units_in_order(self, module: nn.Module) -> bool:
        return self._axis(module) == 0

    def check(self, module: nn.Module, pname: str) -> None:
        if isinstance(module, TRANSPOSED) and module.groups != 1:
            raise UnsupportedLayerError(
                f"structure 'neurons' does not support grouped transposed convolutions ({module}); "
                "exclude the layer or use structure='weights'"
            )

    def num_units(self, module: nn.Module, pname: str) -> int:
        return getattr(module, pname).shape[self._axis(module)]

    def score_units(self, score: Score, weight: torch.Tensor, module: nn.Module, context: ScoreContext) -> torch.Tensor:
        s = score.slices(weight, self._axis(module), context).float()
        if bool(s.isnan().any()):
            raise UnsupportedLayerError(
                f"score {getattr(score, 'name', score)!r} cannot rank the neurons of {context.target.qname} "
                "(bn-scale needs a BatchNorm after the layer: use structure='channels')"
            )
        return s

    def to_units(self, scores: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
        return reduce_units(by_slice(scores, self._axis(module)), reduce)

    def unit_mask(self, mask: torch.Tensor, module: nn.Module) -> torch.Tensor:
        return by_slice(mask, self._axis(module)).any(1)

    def masks(self, keep: torch.Tensor, module: nn.Module, pname: str) -> dict[str, torch.Tensor]:
        weight = getattr(module, pname)
        axis = self._axis(module)
        shape = [1] * weight.dim()
        shape[axis] = -1
        out = {pname: keep.view(shape).expand_as(weight).clone()}
        bias = getattr(module, "bias", None)
        if pname == "weight" and isinstance(bias, torch.Tensor) and bias.shape == keep.shape:
            out["bias"] = keep.clone()
        return out
