"""Safe loading of state dicts: safetensors or ``torch.load(weights_only=True)``, never arbitrary pickles."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import CheckpointError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors in ``path`` (a ``.safetensors`` file, or a torch file holding a state dict,
    possibly under ``"state_dict"`` / ``"model"``), with a DataParallel ``module.`` prefix stripped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise CheckpointError(
            f"cannot read {str(path)!r} safely ({type(exc).__name__}: {exc}); prunekit only loads tensors "
            "(safetensors, or torch.save of a state dict), never pickled objects"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the state dict in ``path`` into ``model`` strictly (every key must match) and return it."""
    state = read_state_dict(path)
    ours = model.state_dict()
    # Old checkpoints lack BatchNorm's num_batches_tracked; that counter does not affect outputs.
    for key in ours:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = ours[key]
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = [k for k in ours if k in state and tuple(ours[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{str(path)!r} does not fit {type(model).__name__}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shape {shapes[:5]}; check the architecture name and num_classes"
        )
    model.load_state_dict(state, strict=True)
    return model
