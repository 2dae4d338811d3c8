"""Whole neurons / filters as units: a row of a Linear weight or an output filter of a conv, with its bias."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from .base import TRANSPOSED, Structure, reduce_units, register


@register("neurons")
class Neurons(Structure):
    """A whole output unit: a row of a Linear weight or an output filter of a conv, with its bias.

    Units are only zeroed here; removing them (and their consumers' inputs) is compaction's job.
    """

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

    def _by_unit(self, x: torch.Tensor, module: nn.Module) -> torch.Tensor:
        return x.movedim(self._axis(module), 0).reshape(x.shape[self._axis(module)], -1)

    def unit_scores(self, scores: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
        return reduce_units(self._by_unit(scores, module), reduce)

    def unit_mask(self, mask: torch.Tensor, module: nn.Module) -> torch.Tensor:
        return self._by_unit(mask, module).any(1)

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
