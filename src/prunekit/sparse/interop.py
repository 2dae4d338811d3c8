"""Move pruned models between prunekit and ``torch.nn.utils.prune``.

``torch.nn.utils.prune`` keeps ``<name>_orig`` (a parameter), ``<name>_mask`` (a float buffer) and a
forward pre-hook that recomputes ``<name> = <name>_orig * <name>_mask`` on every call. prunekit keeps
the pruned parameter itself at zero and a bool ``<name>_mask`` buffer. Both directions keep outputs
identical and convert in place.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils import prune as torch_prune

from ..errors import ExportError
from ..masks import Masks, attach, detach, mask_of, masked_parameters

_TORCH_PRUNE_MASK = "{}_mask"  # torch.nn.utils.prune's own float mask buffer (not prunekit's)


def _torch_pruned(model: nn.Module) -> list[tuple[nn.Module, str]]:
    found = []
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                found.append((module, hook._tensor_name))
    return found


def from_torch_prune(model: nn.Module) -> Masks:
    """Turn every ``torch.nn.utils.prune`` reparametrization of ``model`` into a prunekit mask, in place.

    The parameter becomes ``orig * mask`` again (same ``nn.Parameter`` object as ``<name>_orig``, so
    an optimizer built on it keeps working), the hook goes, and the mask is attached so pruned
    weights stay zero through training. Returns the model's masks.
    """
    found = _torch_pruned(model)
    if not found:
        raise ExportError("the model has no torch.nn.utils.prune masks (no '<name>_orig' + pruning hook)")
    for module, name in found:
        mask = getattr(module, _TORCH_PRUNE_MASK.format(name)).detach() != 0
        torch_prune.remove(module, name)
        attach(module, name, mask)
    return Masks.from_model(model)


def to_torch_prune(model: nn.Module) -> nn.Module:
    """Turn every prunekit mask of ``model`` into a ``torch.nn.utils.prune`` custom mask, in place.

    Afterwards the model is what ``prune.custom_from_mask`` would have made: ``<name>_orig``,
    ``<name>_mask`` and the hook, so ``torch.nn.utils.prune.remove`` and friends work on it.
    """
    entries = list(masked_parameters(model))
    if not entries:
        raise ExportError("the model has no prunekit masks; prune it with pk.prune first")
    for _, module, name in entries:
        mask = mask_of(module, name).clone()
        detach(module, name)
        torch_prune.custom_from_mask(module, name, mask)
    return model
