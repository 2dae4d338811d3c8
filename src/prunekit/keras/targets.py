"""Which Keras variables can be pruned, how their kernels split into units, and which layers are outputs.

Prunable by default: the kernels of ``Dense``, ``Conv1D/2D/3D``, ``DepthwiseConv1D/2D`` and the input
and recurrent kernels of ``LSTM``/``GRU`` cells (``LSTM``, ``GRU``, ``RNN(cell)``, ``Bidirectional``).
Biases, normalization and embeddings stay dense. Names are matched here only, with one meaning:
a layer's name (or, for an RNN cell, the name of the RNN layer holding it) against shell-style
patterns; a pattern that matches nothing is an error, never a silent no-op.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import NoPrunableLayersError, UnknownNameError
from .errors import UnbuiltModelError, require_keras

# Layers through which a unit keeps its identity (unit j in -> unit j out).
PASS_THROUGH = ("Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                "GaussianNoise", "GaussianDropout", "AlphaDropout", "Softmax", "ReLU", "LeakyReLU", "ELU",
                "PReLU", "BatchNormalization", "Identity")


@dataclass
class Target:
    """One prunable kernel. ``kind``: "dense", "conv", "depthwise" or "rnn"; ``name``: the layer's user-facing name."""

    layer: Any
    variable: Any
    bias: Any
    kind: str
    name: str
    owner: Any = None  # the RNN layer holding a cell; else the layer itself

    @property
    def path(self) -> str:
        return self.variable.path

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)

    @property
    def unit_ndim(self) -> int:
        """How many trailing kernel axes index a unit (depthwise: input channel × multiplier)."""
        return 2 if self.kind == "depthwise" else 1


def _kinds() -> list[tuple[tuple[type, ...], str]]:
    keras = require_keras()
    L = keras.layers
    return [((L.Dense,), "dense"), ((L.Conv1D, L.Conv2D, L.Conv3D), "conv"),
            ((L.DepthwiseConv1D, L.DepthwiseConv2D), "depthwise"), ((L.LSTMCell, L.GRUCell), "rnn")]


def all_layers(model: Any) -> list[Any]:
    """Every layer inside ``model`` (nested models and RNN cells included), in model order."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def check_built(model: Any) -> None:
    """Raise :class:`UnbuiltModelError` when ``model`` (or a layer in it) has no weights yet."""
    keras = require_keras()
    if not isinstance(model, keras.Model):
        raise UnbuiltModelError(f"expected a keras.Model, got {type(model).__name__}")
    unbuilt = [layer.name for layer in [model, *all_layers(model)] if not layer.built]
    if unbuilt:
        raise UnbuiltModelError(
            f"the model is not built ({unbuilt[0]} has no weights yet): give it an input shape "
            "(keras.Input(...) as first layer) or call model.build(input_shape) / model(x) once before pruning"
        )


def _owners(model: Any) -> dict[int, Any]:
    """RNN cell id -> the RNN layer that holds it (users know ``lstm``, not ``lstm_cell``)."""
    keras = require_keras()
    return {id(layer.cell): layer for layer in all_layers(model) if isinstance(layer, keras.layers.RNN)}


def candidates(model: Any) -> list[Target]:
    """All prunable kernels of ``model`` in layer order (no exclusions applied)."""
    check_built(model)
    owners, out = _owners(model), []
    for layer in all_layers(model):
        for classes, kind in _kinds():
            if isinstance(layer, classes):
                owner = owners.get(id(layer), layer)
                if kind == "rnn":
                    out.append(Target(layer, layer.kernel, None, kind, owner.name, owner))
                    out.append(Target(layer, layer.recurrent_kernel, None, kind, owner.name, owner))
                else:
                    out.append(Target(layer, layer.kernel, getattr(layer, "bias", None), kind, layer.name, layer))
                break
    return out


def matches(spec: Any, target: Target) -> bool:
    """Whether an ``exclude``-style spec (a name pattern or a layer class) designates ``target``."""
    if isinstance(spec, type):
        return isinstance(target.layer, spec) or isinstance(target.owner, spec)
    if isinstance(spec, str):
        return fnmatch.fnmatchcase(target.name, spec) or fnmatch.fnmatchcase(target.layer.name, spec)
    raise UnknownNameError(f"exclude/outputs entries are layer names or layer classes, got {spec!r}")


def select(model: Any, exclude: Iterable[Any] = ()) -> list[Target]:
    """The prunable kernels of ``model`` minus ``exclude``; unknown names and empty results are errors."""
    targets, exclude = candidates(model), list(exclude)
    names = {layer.name for layer in all_layers(model)}
    for spec in exclude:
        if isinstance(spec, str) and not any(fnmatch.fnmatchcase(n, spec) for n in names):
            raise UnknownNameError(f"exclude={spec!r} matches no layer of {model.name}; layers: {', '.join(sorted(names))}")
    kept = [t for t in targets if not any(matches(s, t) for s in exclude)]
    if not kept:
        raise NoPrunableLayersError(
            f"{model.name} has no prunable layer left (prunable: Dense, Conv1D/2D/3D, DepthwiseConv1D/2D, "
            "LSTM/GRU kernels); check exclude="
        )
    return kept


def output_layers(model: Any) -> set[int]:
    """Ids of the layers whose units are model outputs (walking back through unit-preserving layers).

    For a subclassed model without a graph, the last prunable layer is taken as the output.
    """
    found: set[int] = set()
    try:
        outputs = list(model.outputs or [])
    except (AttributeError, ValueError):
        outputs = []
    stack = [t._keras_history[0] for t in outputs if hasattr(t, "_keras_history")]
    while stack:
        op = stack.pop()
        if hasattr(op, "outputs") and hasattr(op, "layers") and op.outputs:  # nested functional model
            stack.extend(t._keras_history[0] for t in op.outputs)
            continue
        found.add(id(op))
        if type(op).__name__ in PASS_THROUGH:
            for node in getattr(op, "_inbound_nodes", []):
                stack.extend(t._keras_history[0] for t in node.input_tensors)
    if not found:
        targets = candidates(model)
        if targets:
            found.add(id(targets[-1].layer))
    return found
