"""Where a compacted model goes wrong: the op and layer that fail, or the first layer whose output differs.

Used only to word :class:`~prunekit.errors.CompactionError` messages, so a user learns which line of
their forward pass disagrees with the smaller tensors, not that "something hard-codes a size".
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


class _Failing(TorchFunctionMode):
    """Remembers the innermost torch function that raised."""

    def __init__(self):
        super().__init__()
        self.op: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return func(*args, **(kwargs or {}))
        except Exception:
            if self.op is None:
                self.op = getattr(func, "__name__", str(func))
            raise


def _run(model: nn.Module, example_inputs: Any, on_call) -> Any:
    """Run ``model`` (eval, no grad) with ``on_call(name, phase, output)`` called around every submodule."""
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: on_call(n, "enter", None)))
        handles.append(module.register_forward_hook(lambda m, a, out, n=name: on_call(n, "leave", out)))
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*args)
    finally:
        model.train(was)
        for h in handles:
            h.remove()


def failure(model: nn.Module, example_inputs: Any) -> str:
    """Words for where ``model`` raises on ``example_inputs``: "at 'view' in layer 'blocks.0.attn' (...)"."""
    stack: list[str] = []
    mode = _Failing()

    def on_call(name: str, phase: str, out: Any) -> None:
        if phase == "enter":
            stack.append(name)
        else:
            stack.pop()

    try:
        with mode:
            _run(model, example_inputs, on_call)
    except Exception as err:  # the error being described
        layer = stack[-1] if stack and stack[-1] else type(model).__name__
        op = f"at {mode.op!r} " if mode.op else ""
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{op}in layer {layer!r} ({type(err).__name__}: {reason})"
    return "only outside a plain forward pass"


def divergence(reference: nn.Module, small: nn.Module, example_inputs: Any, atol: float) -> str | None:
    """The first layer (in call order) whose output has the same shape in both models but other values."""
    seen: dict[str, list[torch.Tensor]] = {}

    def keep(into: dict):
        def on_call(name: str, phase: str, out: Any) -> None:
            if phase == "leave" and name:
                into.setdefault(name, []).extend(t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return on_call

    _run(reference, example_inputs, keep(seen))
    order: list[str] = []
    got: dict[str, list[torch.Tensor]] = {}

    def record(name: str, phase: str, out: Any) -> None:
        if phase == "leave" and name and name not in got:
            order.append(name)
        keep(got)(name, phase, out)

    _run(small, example_inputs, record)
    for name in order:
        for a, b in zip(seen.get(name, []), got[name]):
            if a.shape == b.shape and a.is_floating_point() and a.numel():
                if float((a - b).abs().max()) > atol * (1.0 + float(a.abs().max())):
                    return name
    return None
