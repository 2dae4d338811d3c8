"""Block scores: how much does a residual block change the stream, or the loss when skipped?

Each scores whole blocks (``structure="blocks"``) from the blocks' inputs and outputs on calibration
inputs: ``data=`` batches (inputs, labels) when given, else ``example_inputs``. Features lie along
dim 1 of 4-D/5-D (convolutional) tensors and along the last dim otherwise (tokens).
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingDataError, PruneError
from ..graph.blocks import first_tensor
from ..losses import cross_entropy
from .base import Score, Target, register
from .gradient import batches

Named = list[tuple[str, nn.Module]]


def _inputs(example_inputs: Any, data: Any) -> Iterable[tuple[Any, Any]]:
    """Calibration batches as (inputs, labels or None)."""
    if data is None or data is example_inputs:  # the engine hands example inputs over when no data is given
        return [(example_inputs, None)]
    return [(x, y) for x, y in batches(data)]


def _call(model: nn.Module, x: Any) -> Any:
    return model(*x) if isinstance(x, tuple) else model(x)


def _features(t: torch.Tensor) -> torch.Tensor:
    """Rows of features: (positions, features)."""
    t = t.float()
    if t.dim() >= 4:
        t = t.movedim(1, -1)
    return t.reshape(-1, t.shape[-1])


class BlockScore(Score):
    """A score of whole blocks: ``blocks(model, blocks, example_inputs, state)`` gives one number per block."""

    needs_example_inputs = True

    def prepare(self, model: nn.Module, targets: list[Target], data: Any, loss_fn: Any) -> Any:
        return {"data": data, "loss_fn": loss_fn}

    def blocks(self, model: nn.Module, blocks: Named, example_inputs: Any, state: Any) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return self.measure(model, blocks, _inputs(example_inputs, (state or {}).get("data")), state or {})
        finally:
            model.train(was_training)

    @abstractmethod
    def measure(self, model: nn.Module, blocks: Named, inputs: Iterable, state: dict) -> torch.Tensor:
        """One score per block, higher = more important (no grad, eval mode)."""


class StreamChange(BlockScore):
    """A block score read from how much each block changes the stream: ``change(input, output)``."""

    def measure(self, model: nn.Module, blocks: Named, inputs: Iterable, state: dict) -> torch.Tensor:
        """The mean ``change`` of every block's input to its output over the calibration inputs."""
        totals = torch.zeros(len(blocks), dtype=torch.float64)
        n = 0
        seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        handles = []
        for i, (_, m) in enumerate(blocks):
            def hook(module, args, kwargs, out, i=i):
                seen[i] = (first_tensor((args, kwargs)), first_tensor(out))
            handles.append(m.register_forward_hook(hook, with_kwargs=True))
        try:
            for x, _ in inputs:
                seen.clear()
                _call(model, x)
                for i, (a, b) in seen.items():
                    totals[i] += self.change(_features(a), _features(b))
                n += 1
        finally:
            for h in handles:
                h.remove()
        return totals / max(n, 1)

    @abstractmethod
    def change(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """How far a block's output rows ``y`` are from its input rows ``x`` (higher = more important)."""


@register("block-influence")
class BlockInfluence(StreamChange):
    """1 − mean cosine similarity of a block's input and output, per position (ShortGPT, Men et al. 2024)."""

    def change(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(1 - F.cosine_similarity(x, y, dim=1, eps=1e-12).mean())


@register("branch-norm")
class BranchNorm(StreamChange):
    """‖output − input‖ / ‖input‖ per position, averaged: the residual branch's size relative to the stream."""

    def change(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(((y - x).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).mean())


@register("skip-loss")
class SkipLoss(BlockScore):
    """The loss increase when the block is skipped (its output replaced by its input), measured on ``data=``."""

    needs_data = True
    needs_loss = True

    def measure(self, model: nn.Module, blocks: Named, inputs: Iterable, state: dict) -> torch.Tensor:
        if state.get("data") is None:
            raise MissingDataError("score 'skip-loss' measures the loss: pass data=(x, y) or an iterable of batches")
        loss_fn: Callable = state.get("loss_fn") or cross_entropy
        inputs = list(inputs)

        def loss() -> float:
            return sum(float(loss_fn(_call(model, x), y)) for x, y in inputs) / len(inputs)

        base = loss()
        out = torch.zeros(len(blocks), dtype=torch.float64)
        for i, (_, m) in enumerate(blocks):
            h = m.register_forward_hook(_skip, with_kwargs=True)
            try:
                out[i] = loss() - base
            finally:
                h.remove()
        return out


def _skip(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
    """A forward hook that makes a block return its input in place of its output."""
    x = first_tensor((args, kwargs))
    if isinstance(out, torch.Tensor):
        return x
    if isinstance(out, tuple):
        return (x, *out[1:])
    raise PruneError(f"cannot skip {type(module).__name__}: it returns {type(out).__name__}")
