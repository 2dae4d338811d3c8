"""Which layers produce a model's outputs (classes, logits, an LM head's vocabulary), so they stay whole.

With ``example_inputs`` the model runs once under forward hooks: the output layers are the candidate
layers whose output tensor the model returns as is (several for multi-head models); if none is
returned unchanged (a softmax or reshape follows), the last candidate layer called is the output
layer. Without inputs the shape of the data is unknown, so the rule is structural: the last
candidate layer registered in the model (``named_modules()`` order) — right for Sequential stacks,
torchvision-style classifiers and Hugging Face LMs; pass ``example_inputs`` for anything else.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten


def output_layers(model: nn.Module, candidates: Iterable[str], example_inputs: Any = None) -> set[str]:
    """Names of the layers among ``candidates`` (module names) whose outputs are the model's outputs."""
    names = list(candidates)
    if not names:
        return set()
    if example_inputs is None:
        return {names[-1]}
    modules = dict(model.named_modules())
    calls: list[tuple[str, torch.Tensor]] = []
    handles = [modules[n].register_forward_hook(lambda m, a, out, n=n: calls.append((n, out))) for n in names]
    try:
        out = model_outputs(model, example_inputs)
    finally:
        for h in handles:
            h.remove()
    returned = {id(t) for t in out}
    found = {n for n, t in calls if id(t) in returned}
    return found or ({calls[-1][0]} if calls else set())


def model_outputs(model: nn.Module, example_inputs: Any) -> list[torch.Tensor]:
    """The tensors ``model`` returns for ``example_inputs`` (a tensor or a tuple of them), in eval mode, no grad."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*args)
    finally:
        model.train(was)
    out = out.to_tuple() if hasattr(out, "to_tuple") else out
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
