"""Calibration: streamed per-layer input statistics for data-aware scores (Wanda, SparseGPT).

Forward pre-hooks on the prunable layers see each calibration batch's inputs and fold them into a
running statistic — the squared norm of every input column (Wanda) or the Gram matrix XᵀX of the
inputs (SparseGPT's Hessian) — so no activation outlives the batch that made it. Inputs are laid out
as rows in the order of the weight's columns: a Linear's input features, a convolution's unfolded
patches (channel, then kernel position, as ``weight.reshape(out, -1)``). Statistics live on the
layer's device, in float32 whatever the model's dtype.

Calibration data are model inputs: a tensor, an ``(inputs, labels)`` pair (labels are ignored), a
dict of keyword inputs, or a list or iterable of these batches.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InsufficientSamplesError, InvalidArgumentError, MissingDataError, UnsupportedLayerError
from .inputs import check_forward


def batches(data: Any) -> list[Any]:
    """The calibration batches (inputs only) held in ``data``, as a list that can be run many times."""
    if data is None:
        raise MissingDataError("this score needs calibration data: pass data= (input batches, or (inputs, labels))")
    if isinstance(data, (torch.Tensor, dict)):
        return [data]
    if _is_pair(data):
        return [data[0]]
    try:
        items = list(data)
    except TypeError:
        raise InvalidArgumentError(f"data must be input tensors, (inputs, labels) or an iterable of batches, "
                                   f"got {type(data).__name__}") from None
    if not items:
        raise MissingDataError("data holds no batch; pass at least one batch of calibration inputs")
    out = []
    for b in items:
        if _is_pair(b):
            b = b[0]
        if not isinstance(b, (torch.Tensor, dict)):
            raise InvalidArgumentError(f"each calibration batch must be a tensor, a dict of inputs or an "
                                       f"(inputs, labels) pair, got {type(b).__name__}")
        out.append(b)
    return out


def _is_pair(b: Any) -> bool:
    return isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(t, torch.Tensor) for t in b)


def rows(module: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """A layer's input ``x`` as rows (n, in) in the order of the columns of ``weight.reshape(out, -1)``."""
    if isinstance(module, nn.Linear):
        if x.shape[-1] != module.in_features:
            raise InvalidArgumentError(f"calibration inputs of layer {name!r} have {x.shape[-1]} features, but it "
                                       f"takes {module.in_features}; pass data the model accepts")
        return x.reshape(-1, module.in_features)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and type(module) in (nn.Conv1d, nn.Conv2d):
        if module.groups != 1 or isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise UnsupportedLayerError(f"layer {name!r}: calibration handles convolutions with groups=1 and "
                                        "numeric zero padding; exclude it with exclude=[...]")
        if x.dim() < 2 or x.shape[-(module.weight.dim() - 1)] != module.in_channels:
            raise InvalidArgumentError(f"calibration inputs of layer {name!r} have shape {tuple(x.shape)}, but it "
                                       f"takes {module.in_channels} channels; pass data the model accepts")
        two = isinstance(module, nn.Conv2d)
        pair = (lambda v, one=1: tuple(v)) if two else (lambda v, one=1: (one, v[0]))  # Conv1d as 1×k Conv2d
        x4 = x if two else x.unsqueeze(-2)
        cols = F.unfold(x4, pair(module.kernel_size), dilation=pair(module.dilation),
                        padding=pair(module.padding, 0), stride=pair(module.stride))
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    raise UnsupportedLayerError(f"layer {name!r} ({type(module).__name__}): calibration scores handle Linear, "
                                "Conv1d and Conv2d; exclude it with exclude=[...]")


class ColumnNorms:
    """Running Σ x_j² per input column: ``result()`` is ‖X_j‖₂ over every calibration row."""

    def __init__(self) -> None:
        self.sq: torch.Tensor | None = None
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        s = x.float().pow(2).sum(0)
        self.sq = s if self.sq is None else self.sq.add_(s)
        self.n += x.shape[0]

    def result(self) -> torch.Tensor:
        return self.sq.sqrt()

    def finite(self) -> bool:
        return self.sq is None or bool(torch.isfinite(self.sq).all())


class Gram:
    """Running XᵀX of the input rows: ``result()`` is the layer-wise Hessian H = 2XᵀX / n."""

    def __init__(self) -> None:
        self.h: torch.Tensor | None = None
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.float()
        if self.h is None:
            self.h = torch.zeros(x.shape[1], x.shape[1], device=x.device)
        self.h.addmm_(x.t(), x)
        self.n += x.shape[0]

    def result(self) -> torch.Tensor:
        return self.h.mul_(2 / self.n)

    def finite(self) -> bool:
        return self.h is None or bool(torch.isfinite(self.h).all())


def call(model: nn.Module, batch: Any) -> Any:
    """Run ``model`` on one calibration batch (a dict is passed as keyword inputs), on the model's device."""
    device = next((p.device for p in model.parameters()), None)
    if isinstance(batch, dict):
        return model(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    return model(batch.to(device))


@contextlib.contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def check_fits(model: nn.Module, data: list[Any]) -> None:
    """The first batch runs through the model, or an :class:`InvalidArgumentError` names the layer it did not fit."""
    if isinstance(data[0], torch.Tensor):
        device = next((p.device for p in model.parameters()), data[0].device)
        check_forward(model, data[0].to(device), "data")


class _Stop(Exception):
    """Raised from a hook to end a forward early: every layer being calibrated has seen its input."""


def collect(model: nn.Module, layers: dict[str, nn.Module], data: list[Any], stat: Callable[[], Any], *,
            min_samples: int = 1, progress: Callable[[], None] | None = None, stop: bool = False) -> dict[str, Any]:
    """Run every batch of ``data`` through ``model`` and fold each named layer's inputs into a ``stat()``.

    ``stop``: the layers run once per forward, so a forward ends as soon as all of them have their input
    (the rest of the network is not computed). Raises :class:`InsufficientSamplesError` naming a
    layer that saw fewer than ``min_samples`` input rows, and :class:`InvalidArgumentError` naming the
    first layer whose inputs held NaN or infinite values (their statistics would rank weights at random).
    """
    stats = {name: stat() for name in layers}
    pending: set[str] = set()

    def hook(name: str) -> Callable:
        def pre(module: nn.Module, inputs: tuple) -> None:
            if not inputs or not isinstance(inputs[0], torch.Tensor):
                raise InvalidArgumentError(f"layer {name!r} got no tensor input during calibration")
            stats[name].add(rows(module, inputs[0].detach(), name))
            pending.discard(name)
            if stop and not pending:
                raise _Stop
        return pre

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        with _eval(model):
            for batch in data:
                pending.update(layers)
                try:
                    call(model, batch)
                except _Stop:
                    pass
                if progress is not None:
                    progress()
    finally:
        for h in handles:
            h.remove()
    for name, s in stats.items():
        if s.n < min_samples:
            raise InsufficientSamplesError(
                f"layer {name!r} saw {s.n} calibration input rows, fewer than min_samples={min_samples}; "
                "pass more calibration data, or exclude the layer if the model's forward never reaches it"
            )
        if not s.finite():
            raise InvalidArgumentError(f"calibration inputs of layer {name!r} hold NaN or infinite values (or square "
                                       "past float32's range); check the calibration data and the layers before it")
    return stats


def order(model: nn.Module, layers: dict[str, nn.Module], batch: Any) -> tuple[list[list[str]], set[str]]:
    """The layers in the order the forward first calls them, grouped in runs that share one input tensor,
    and the set of layers the forward calls exactly once.

    Layers of one group (q, k and v of attention) do not feed each other, so one calibration pass serves
    them all. A layer the forward never calls raises :class:`MissingDataError` naming it.
    """
    seen: list[str] = []
    groups: list[list[str]] = []
    last: list[Any] = [None]  # the previous called layer's input: identity means the same input
    calls = dict.fromkeys(layers, 0)

    def hook(name: str) -> Callable:
        def pre(module: nn.Module, inputs: tuple) -> None:
            calls[name] += 1
            if name in seen:
                return
            x = inputs[0] if inputs else None
            if groups and x is not None and x is last[0]:
                groups[-1].append(name)
            else:
                groups.append([name])
            seen.append(name)
            last[0] = x
        return pre

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        with _eval(model):
            call(model, batch)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in seen]
    if missing:
        raise MissingDataError(f"the forward on the calibration data never reaches layer(s) {', '.join(map(repr, missing))}; "
                               "exclude them with exclude=[...]")
    return groups, {n for n, c in calls.items() if c == 1}


@contextlib.contextmanager
def progress_bar(enabled: bool | None, total: int, what: str) -> Iterator[Callable[[], None] | None]:
    """A transient rich bar advanced by one per call (shown by default only on a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda: bar.advance(task)


def layer_names(model: nn.Module, modules: list[nn.Module]) -> dict[str, nn.Module]:
    """``{name: module}`` for the given modules, named as ``model.named_modules()`` names them."""
    names = {id(m): n for n, m in model.named_modules()}
    return {names[id(m)]: m for m in modules}
