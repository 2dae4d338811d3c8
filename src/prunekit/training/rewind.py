"""Fine-tuning after pruning: continue, weight rewinding (lottery ticket), LR rewinding, and the two
controls that test a ticket — random re-initialization with the found mask, and a random mask of the
same per-layer sparsity (Frankle & Carbin 2019; Renda et al. 2020)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .callbacks import Callback, History, TrainState
from ..data.base import num_batches
from ..errors import PruneError
from ..masks import Masks, split_state, unprune
from .loop import train as run_training

VARIANTS = ("continue", "rewind", "lr-rewind", "reinit", "random-mask")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter and buffer except masks: the state to rewind to."""
    return {k: v.detach().clone() for k, v in split_state(model.state_dict())[0].items()}


class Snapshot(Callback):
    """Keeps :func:`snapshot` of the model at optimizer step ``step`` (0 = before any training)."""

    def __init__(self, step: int = 0):
        self.step = step
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        if state.step == self.step:
            self.state = snapshot(state.model)

    def on_step_end(self, state: TrainState) -> None:
        if state.step == self.step:
            self.state = snapshot(state.model)


@torch.no_grad()
def rewind(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Set every parameter and buffer to ``state`` (from :func:`snapshot`), keeping the masks applied."""
    own = split_state(model.state_dict())[0]
    if set(own) != set(state):
        raise PruneError(f"the rewind state does not fit this model (differs in {sorted(set(own) ^ set(state))[:5]})")
    for k, v in own.items():
        v.copy_(state[k])
    for qname, mask in Masks.from_model(model).items():
        model.get_parameter(qname).masked_fill_(~mask, 0)


@torch.no_grad()
def reinitialize(model: nn.Module, seed: int = 0) -> None:
    """Fresh PyTorch-default initialization (``reset_parameters``) from ``seed``, masks kept applied."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    rewind(model, snapshot(model))


def random_masks_like(masks: Mapping[str, torch.Tensor], seed: int = 0) -> Masks:
    """Masks keeping, in each tensor, as many entries as ``masks`` do, at uniformly random positions."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, mask in masks.items():
        keep = torch.zeros(mask.numel(), dtype=torch.bool)
        keep[torch.randperm(mask.numel(), generator=gen)[: int(mask.sum())]] = True
        out[name] = keep.reshape(mask.shape).to(mask.device)
    return Masks(out)


def finetune(model: nn.Module, variant: str, train: Any, val: Any = None, *, epochs: int | None = None,
             rewind_state: Mapping[str, torch.Tensor] | None = None, rewind_step: int = 0, seed: int = 0,
             **train_options: Any) -> History:
    """Retrain a pruned ``model`` in place after pruning, by one of :data:`VARIANTS`.

    ``epochs`` is the length of the fine-tuning for "continue" and of the full original training
    run T for the others (required), which replay its LR schedule from step ``rewind_step`` = k to T:
    "rewind" resets the weights to ``rewind_state`` (those of step k; k = 0 is the lottery ticket),
    "lr-rewind" keeps the weights, "reinit" draws fresh random weights (seed ``seed``) and trains
    all of T, "random-mask" swaps the mask for a random one of the same per-layer sparsity and
    rewinds the weights to step k. ``train_options`` go to :func:`prunekit.train` ("continue" may
    give its length as ``steps`` instead of ``epochs``).
    """
    if variant not in VARIANTS:
        raise PruneError(f"unknown fine-tuning {variant!r}; valid: {', '.join(VARIANTS)}")
    if variant == "continue":
        if epochs is not None:
            train_options["epochs"] = epochs
        return run_training(model, train, val, seed=seed, **train_options)
    if epochs is None:
        raise PruneError(f"fine-tuning {variant!r} replays the original training: pass epochs= (its length T)")
    total = epochs * num_batches(train, train_options.get("batch_size", 128))
    if not 0 <= rewind_step < total:
        raise PruneError(f"rewind_step must be in [0, {total}) steps (got {rewind_step})")
    start = 0 if variant == "reinit" else rewind_step
    if variant in ("rewind", "random-mask") and rewind_state is None:
        raise PruneError(f"fine-tuning {variant!r} needs rewind_state= (weights of step k, see Snapshot)")
    if variant == "random-mask":
        new = random_masks_like(Masks.from_model(model), seed)
        unprune(model)
        new.apply(model)
    if variant in ("rewind", "random-mask"):
        rewind(model, rewind_state)
    elif variant == "reinit":
        reinitialize(model, seed)
    return run_training(model, train, val, steps=total - start, seed=seed, schedule_offset=start,
                        schedule_total=total, **train_options)
