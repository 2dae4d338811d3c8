"""Argument checks for the public entry points: say which argument, which layer and what was expected.

A wrong shape otherwise surfaces as a traceback from deep inside torch ("mat1 and mat2 shapes cannot
be multiplied"). :func:`check_forward` runs the model once with every layer watched, so a
failure names the argument, the layer, the shape it got and the shape it expects.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from .errors import InvalidArgumentError, MissingDataError


def check_module(model: Any, arg: str = "model") -> nn.Module:
    """``model`` if it is an ``nn.Module`` with real (not meta-device) parameters."""
    if not isinstance(model, nn.Module):
        hint = "; the model comes first, then the inputs" if isinstance(model, torch.Tensor) else ""
        raise InvalidArgumentError(f"{arg} must be a torch.nn.Module, got {type(model).__name__}{hint}")
    meta = next((n for n, p in model.named_parameters() if p.is_meta), None)
    if meta is not None:
        raise InvalidArgumentError(
            f"{arg} has parameters on the meta device ({meta}), which hold no values; materialize it first "
            "(model.to_empty(device='cpu') and load its weights)"
        )
    return model


def check_seed(seed: Any, arg: str = "seed") -> int:
    """``seed`` as an int; floats, strings and bools are refused (a seed of 0.5 would silently be 0)."""
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise InvalidArgumentError(f"{arg} must be an integer (got {seed!r} of type {type(seed).__name__})")
    return int(seed)


def check_number(value: Any, arg: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    """``value`` if it is a finite real number within the given bounds; otherwise a message naming ``arg``."""
    kind = Integral if integer else Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        what = "an integer" if integer else "a finite number"
        raise InvalidArgumentError(f"{arg} must be {what}{' ' + bounds if bounds else ''} (got {value!r})")
    return value


def as_args(example_inputs: Any, arg: str = "example_inputs") -> tuple:
    """The positional arguments ``example_inputs`` stands for: a tuple is several, anything else one."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    tensors = [t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)]
    if not tensors:
        raise InvalidArgumentError(
            f"{arg} must be a tensor or a tuple of the model's positional inputs, got "
            f"{type(example_inputs).__name__}; pass e.g. torch.randn(1, 3, 32, 32)"
        )
    return args


def _expects(module: nn.Module) -> str:
    """What a layer expects of its input, in words, for the error message."""
    for attr, where in (("in_features", "last dimension"), ("in_channels", "channel dimension (dim 1)"),
                        ("num_features", "channel dimension (dim 1)"), ("embed_dim", "last dimension"),
                        ("normalized_shape", "trailing dimensions")):
        if hasattr(module, attr):
            return f"; it expects {where} = {getattr(module, attr)}"
    return ""


def _shapes(inputs: tuple) -> str:
    return ", ".join(str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__ for t in inputs)


def check_forward(model: nn.Module, example_inputs: Any, arg: str = "example_inputs") -> tuple:
    """Run ``model`` once on ``example_inputs`` (eval mode, no grad); return the positional args.

    A failure raises :class:`InvalidArgumentError` naming ``arg``, the innermost layer that was running,
    the shapes it got and what it expects; the device of inputs and model is checked first.
    """
    return forward_checked(model, example_inputs, arg)[0]


def forward_checked(model: nn.Module, example_inputs: Any, arg: str = "example_inputs") -> tuple[tuple, Any]:
    """:func:`check_forward`, also returning the model's output."""
    check_module(model)
    args = as_args(example_inputs, arg)
    devices = {t.device for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)}
    on = {p.device for p in model.parameters()}
    if on and devices - on:
        raise InvalidArgumentError(f"{arg} is on {', '.join(sorted(map(str, devices - on)))} but the model is on "
                                   f"{', '.join(sorted(map(str, on)))}; move them to one device")
    running: list[tuple[str, nn.Module, tuple]] = []  # the layers entered and not yet left, innermost last

    def enter(name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            running.append((name, module, inputs))
        return hook

    def leave(module: nn.Module, inputs: tuple, output: Any) -> None:
        running.pop()

    handles = []
    for name, module in model.named_modules():
        if name:
            handles += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return args, model(*args)
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not running:
            raise InvalidArgumentError(f"{arg} of shape {_shapes(args)} does not fit {type(model).__name__}: "
                                       f"{reason}") from None
        name, module, inputs = running[-1]
        raise InvalidArgumentError(
            f"{arg} of shape {_shapes(args)} does not fit the model: layer {name!r} ({type(module).__name__}) "
            f"got input {_shapes(inputs)}{_expects(module)} ({reason})"
        ) from None
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def check_data(model: nn.Module, data: Any, arg: str = "data") -> None:
    """``data`` for a data-driven score: ``(x, y)`` tensors or an iterable of them, fitting the model.

    Checks the first batch only (data may be a stream): ``x`` runs through the model, ``y`` has one
    entry per example, and integer labels lie in ``0 .. classes-1`` of the model's output (classes on
    its last dimension; ``-100`` marks a target that is not scored).
    """
    if isinstance(data, torch.Tensor) or data is None or isinstance(data, (str, bytes)):
        raise InvalidArgumentError(f"{arg} must be (inputs, labels) tensors or an iterable of such batches, "
                                   f"got {type(data).__name__}")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        batch = data
    else:
        try:
            batch = next(iter(data), None)
        except TypeError:
            raise InvalidArgumentError(f"{arg} must be (inputs, labels) or an iterable of batches, "
                                       f"got {type(data).__name__}") from None
        if batch is None:
            raise MissingDataError(f"{arg} holds no batch; pass at least one (inputs, labels) pair")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor)):
        raise InvalidArgumentError(f"each batch of {arg} must be an (inputs, labels) pair of tensors")
    x, y = batch
    args, out = forward_checked(model, x, f"{arg} inputs")
    n = len(args[0]) if isinstance(args[0], torch.Tensor) and args[0].dim() else None
    if n is not None and len(y) != n:
        raise InvalidArgumentError(f"{arg}: {n} inputs but {len(y)} labels; pass one label per input")
    if isinstance(out, torch.Tensor) and not y.is_floating_point() and out.dim() >= 2:
        classes = out.shape[-1]  # (B, C) of a classifier, (B, T, V) of a language model
        y = y[y != -100]  # targets that are not scored (the loss's ignore_index)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise InvalidArgumentError(
                f"{arg}: labels range {int(y.min())}..{int(y.max())}, but the model has {classes} outputs "
                f"(labels must be 0..{classes - 1})"
            )


def check_training(*, lr: Any, batch_size: Any, momentum: Any, weight_decay: Any, seed: Any) -> None:
    """The numeric options of a training run: a learning rate of -1 or inf would train to NaN."""
    check_number(lr, "lr", low=0, low_open=True)
    check_number(batch_size, "batch_size", low=1, integer=True)
    check_number(momentum, "momentum", low=0, high=1, high_open=True)
    check_number(weight_decay, "weight_decay", low=0)
    check_seed(seed)


def check_ties(model: nn.Module, excluded: Callable[[str, nn.Module], bool], types: tuple[type, ...]) -> None:
    """Refuse a weight tied between an excluded and an included layer of ``types``.

    Pruning the included layer would prune the excluded one through the tie without a word; the
    user must exclude both names or neither. ``excluded(name, module)`` is the caller's exclude rule.
    """
    sides: dict[int, tuple[list[str], list[str]]] = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, types) and isinstance(weight, nn.Parameter):
            sides.setdefault(id(weight), ([], []))[bool(excluded(name, module))].append(name)
    for kept, dropped in sides.values():
        if kept and dropped:
            raise InvalidArgumentError(
                f"the weight of {dropped[0]!r} (excluded) is tied to {kept[0]!r} (pruned), so pruning one prunes "
                f"the other; exclude both {dropped[0]!r} and {kept[0]!r}, or neither"
            )
