"""Which tensors hold a layer's prunable weights, beyond ``Linear`` / ``Conv`` ``.weight``.

* Recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``): ``weight_ih_l*``, ``weight_hh_l*`` (and the
  projection ``weight_hr_l*``). The RNN runs the very Parameters in ``_flat_weights``, so zeroing them
  in place is what it computes with.
* ``nn.MultiheadAttention``: ``in_proj_weight`` (or ``q/k/v_proj_weight`` when the widths differ);
  its ``out_proj`` is a ``Linear`` and already prunable.
* A weight behind a parametrization that keeps zeros of its input: ``spectral_norm`` (W / σ, its
  ``original`` is masked) and ``weight_norm`` (g · v / ‖v‖, its direction ``original1`` is masked; a
  fully pruned slice computes 0, see :mod:`prunekit.masks`). The weight they compute is zero exactly
  where the mask says. Other parametrizations are locked, with a warning, and :func:`prunekit.sparsity`
  still counts them, so it never reports a target that was not reached.
"""
from __future__ import annotations

import warnings
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm, _WeightNorm

RECURRENT = (nn.RNNBase,)
ATTENTION = (nn.MultiheadAttention,)
_MASKABLE = {_SpectralNorm: "original", _WeightNorm: "original1"}  # the input whose zeros stay zero


def is_attention(module: nn.Module) -> bool:
    """``nn.MultiheadAttention``, or a module shaped like it (an ``in_proj_weight`` and an ``out_proj``
    Linear it reads directly, as the attention ``pk.compact`` builds after head pruning)."""
    return isinstance(module, ATTENTION) or (isinstance(getattr(module, "in_proj_weight", None), nn.Parameter)
                                             and isinstance(getattr(module, "out_proj", None), nn.Linear))


def extra_weights(module: nn.Module) -> list[str]:
    """Names of the recurrent or attention projection weights of ``module`` (empty for other modules)."""
    if isinstance(module, RECURRENT):
        return [n for n in module._flat_weights_names if n.startswith("weight_")]
    if is_attention(module):
        names = ["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"]
        return [n for n in names if isinstance(getattr(module, n, None), nn.Parameter)]
    return []


def behind(module: nn.Module, pname: str) -> tuple[nn.Module, str] | str:
    """For a parametrized ``module.<pname>``: ``(holder, name)`` of the tensor to mask, or why none can be."""
    chain = module.parametrizations[pname]
    kind = next((k for k in _MASKABLE if isinstance(chain[0], k)), None)
    if len(chain) == 1 and kind is not None and isinstance(getattr(chain, _MASKABLE[kind], None), nn.Parameter):
        return chain, _MASKABLE[kind]
    return f"its parametrization ({', '.join(type(p).__name__ for p in chain)}) may not keep a pruned entry at zero"


def locked(model: nn.Module, types: tuple[type, ...], skip, layers_only: bool = False
           ) -> Iterator[tuple[str, nn.Module, str]]:
    """``(layer name, layer, reason)`` for every parametrized weight of ``types`` that is not masked.

    With ``layers_only`` (structures that remove whole units, which compaction rebuilds as plain
    layers) every parametrized weight is locked.
    """
    for name, module in model.named_modules():
        if isinstance(module, types) and parametrize.is_parametrized(module, "weight") and not skip(name, module, "weight"):
            found = behind(module, "weight")
            if isinstance(found, str):
                yield name, module, found
            elif layers_only:
                yield name, module, "whole units are not removed from parametrized weights"


def warn_locked(model: nn.Module, types: tuple[type, ...], skip, layers_only: bool = False) -> None:
    """Say which parametrized layers stay dense, and how to prune them."""
    for name, _, reason in locked(model, types, skip, layers_only):
        warnings.warn(
            f"layer {name!r}: its weight is kept dense because {reason}; fold the parametrization with "
            f"torch.nn.utils.parametrize.remove_parametrizations(model.get_submodule({name!r}), 'weight') to prune it, or exclude "
            f"it to silence this",
            UserWarning, stacklevel=4,
        )


def locked_weights(model: nn.Module, types: tuple[type, ...], skip) -> list[torch.Tensor]:
    """The weights locked layers compute, for counting (``pk.sparsity`` counts them as unpruned)."""
    with torch.no_grad():
        return [module.weight.detach() for _, module, _ in locked(model, types, skip)]
