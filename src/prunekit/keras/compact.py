"""``compact``: turn unit pruning into a physically smaller Keras model with the same outputs.

A unit (Dense unit or conv filter) is removable when its kernel entries and bias are all zero (or all
masked): its output is then the constant ``activation(0)``. Compaction rebuilds the model from its
config with fewer ``units``/``filters``, drops the unit's column, and drops the matching input rows of
every consumer (the next Dense/Conv, through Dropout/activations/BatchNorm/pooling/Flatten), folding a
nonzero constant into the consumer's bias. Output layers keep every unit. A consumer the rule cannot
handle (Add, Concatenate, an RNN, a nested model…) raises :class:`CompactionError` naming the layer;
the result is checked against the original on a random batch, so a wrong model is never returned.
Remaining (unstructured) masks are carried over, sliced, so they stay held while fine-tuning.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import masks as kmasks
from .errors import CompactionError, require_keras
from .targets import PASS_THROUGH, check_built, output_layers

_SHAPE_ONLY = ("Flatten",)
_POOLING = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
            "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D")


def _np(v: Any) -> np.ndarray:
    return require_keras().ops.convert_to_numpy(v)


def _is_producer(layer: Any) -> bool:
    L = require_keras().layers
    return isinstance(layer, (L.Dense, L.Conv1D, L.Conv2D, L.Conv3D)) and getattr(layer, "groups", 1) == 1


def _removable(model: Any, layer: Any) -> np.ndarray:
    """Per-unit bool: kernel column and bias are zero (or masked), so the unit outputs activation(0)."""
    masks = kmasks.get(model)
    kernel = _np(layer.kernel)
    if layer.kernel.path in masks:
        kernel = np.where(masks[layer.kernel.path][1], kernel, 0)
    dead = (kernel == 0).reshape(-1, kernel.shape[-1]).all(axis=0)
    if layer.bias is not None:
        bias = _np(layer.bias)
        if layer.bias.path in masks:
            bias = np.where(masks[layer.bias.path][1], bias, 0)
        dead &= bias == 0
    return dead


def _consumers(layer: Any) -> list[Any]:
    """The distinct layers fed by ``layer`` (a Sequential rebuilt from config lists a consumer twice)."""
    seen: dict[int, Any] = {}
    for node in layer._outbound_nodes:
        seen.setdefault(id(node.operation), node.operation)
    return list(seen.values())


def _constant(layer: Any, units: int) -> np.ndarray:
    """What a dead unit of ``layer`` outputs: ``activation(0)`` per unit."""
    ops = require_keras().ops
    return _np(layer.activation(ops.zeros((1, units)))).reshape(-1)


def _apply_const(layer: Any, const: np.ndarray) -> np.ndarray:
    """A unit-preserving layer applied (inference mode) to a per-unit constant input."""
    name = type(layer).__name__
    if name.startswith(("Dropout", "SpatialDropout", "Gaussian", "AlphaDropout")) or name in _POOLING + ("Identity",):
        return const
    x = require_keras().ops.convert_to_tensor(const[None].astype(np.float32))
    return _np(layer(x, training=False)).reshape(-1)


def _plan(model: Any, producer: Any, keep: np.ndarray, edits: dict) -> None:
    """Record the input-side edits of every consumer of ``producer`` (whose kept units are ``keep``)."""
    const = _constant(producer, keep.size)
    stack = [(c, const, None) for c in _consumers(producer)]
    if not stack:
        raise CompactionError(f"{producer.name} has removable units but no consumer layer; nothing to compact")
    while stack:
        layer, const, flat = stack.pop()
        name = type(layer).__name__
        if name in PASS_THROUGH or name in _POOLING:
            if flat is not None:
                raise CompactionError(f"{layer.name} ({name}) after a Flatten cannot be compacted through")
            edits.setdefault(layer.name, []).append(("channels", keep, None))
            nxt = _apply_const(layer, const)
            stack += [(c, nxt, None) for c in _consumers(layer)]
        elif name in _SHAPE_ONLY:
            in_shape = tuple(layer.input.shape)
            spatial = int(np.prod(in_shape[1:-1])) if getattr(producer, "data_format", "channels_last") == "channels_last" else None
            if spatial is None:
                raise CompactionError(f"{layer.name}: Flatten after a channels_first {producer.name} is not supported")
            stack += [(c, const, spatial) for c in _consumers(layer)]
        elif _is_producer(layer):
            rows = keep if flat is None else np.tile(keep, flat)
            drop_const = np.where(keep, 0.0, const)
            if flat is not None:
                drop_const = np.tile(drop_const, flat)
            if np.any(drop_const != 0) and name != "Dense" and layer.padding != "valid":
                raise CompactionError(
                    f"{layer.name} ({name}, padding={layer.padding!r}) reads removed channels of {producer.name} that "
                    f"output a nonzero constant {float(np.abs(drop_const).max()):.3g}; the border makes it "
                    "position-dependent — use an activation with f(0)=0 (relu, tanh, linear) or padding='valid'"
                )
            edits.setdefault(layer.name, []).append(("rows", rows, drop_const))
        else:
            raise CompactionError(
                f"{layer.name} ({name}) consumes the units of {producer.name}; prunekit cannot resolve that coupling — "
                f"exclude {producer.name!r} from unit pruning (exclude=[{producer.name!r}]) and prune again"
            )


def _sliced(layer: Any, weights: list[np.ndarray], ops_list: list) -> list[np.ndarray]:
    """``layer``'s weights after its output-side ("out") and input-side ("rows"/"channels") edits."""
    out = [w.copy() for w in weights]
    for kind, keep, const in ops_list:
        if kind == "out":
            out = [w[..., keep] for w in out]
        elif kind == "channels":  # BatchNorm / PReLU parameters of the removed channels
            out = [w[..., keep] for w in out]
        else:  # rows of a Dense kernel / input channels of a conv kernel; dropped constants fold into the bias
            kernel = out[0]
            if const is not None and np.any(const != 0):
                contribution = np.tensordot(const, np.moveaxis(kernel, -2, 0), axes=(0, 0))
                contribution = contribution.reshape(-1, kernel.shape[-1]).sum(0)
                if len(out) < 2:
                    raise CompactionError(f"{layer.name} has no bias to absorb the removed units' constant output")
                out[1] = out[1] + contribution.astype(out[1].dtype)
            out[0] = np.take(kernel, np.flatnonzero(keep), axis=kernel.ndim - 2)
    return out


def _strip_build(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _strip_build(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, list):
        return [_strip_build(v) for v in config]
    return config


def compact(model: Any, *, atol: float = 1e-4) -> Any:
    """A new, smaller Keras model without the removable units of ``model``'s Dense/Conv layers.

    Works on Sequential and functional models; ``model`` is not changed. The result's outputs equal
    ``model``'s on a random batch to ``atol`` (relative to the output scale) or :class:`CompactionError`
    is raised. Masks of remaining sparse kernels are carried over (sliced) and held as before.
    """
    keras = require_keras()
    check_built(model)
    if not isinstance(model, keras.Sequential) and not hasattr(model, "_run_through_graph"):
        raise CompactionError(f"compact needs a Sequential or functional model; {type(model).__name__} is subclassed "
                              "— rebuild it as a functional model (keras.Model(inputs, outputs))")
    outputs = output_layers(model)
    edits: dict[str, list] = {}
    sizes: dict[str, int] = {}
    for layer in model.layers:
        if not _is_producer(layer) or id(layer) in outputs:
            continue
        dead = _removable(model, layer)
        if not dead.any() or dead.all():
            continue
        keep = ~dead
        _plan(model, layer, keep, edits)
        edits.setdefault(layer.name, []).insert(0, ("out", keep, None))
        sizes[layer.name] = int(keep.sum())
    config = _strip_build(model.get_config())
    for entry in config["layers"]:
        name = entry["config"].get("name")
        if name in sizes:
            key = "units" if "units" in entry["config"] else "filters"
            entry["config"][key] = sizes[name]
    small = model.__class__.from_config(config)
    old_masks = kmasks.get(model)
    for old, new in zip(model.layers, small.layers):
        todo = edits.get(old.name, [])
        weights = [_np(v) for v in old.weights]
        new.set_weights(_sliced(old, weights, todo) if todo else weights)
        masked = [i for i, v in enumerate(old.weights) if v.path in old_masks]
        if masked:  # slice the masks like the weights (no constant folding) and hold them on the new model
            as_float = [old_masks[v.path][1].astype(np.float32) if v.path in old_masks else np.ones(v.shape, np.float32)
                        for v in old.weights]
            sliced = _sliced(old, as_float, [(kind, keep, None) for kind, keep, _ in todo])
            for i in masked:
                if not (sliced[i] > 0.5).all():  # the removed units were all that this mask held
                    kmasks.attach(small, new.weights[i], sliced[i] > 0.5)
    _verify(model, small, atol)
    return small


def _verify(model: Any, small: Any, atol: float) -> None:
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, *[d or 1 for d in t.shape[1:]])).astype(np.float32) for t in model.inputs]
    xs = xs[0] if len(xs) == 1 else xs
    a = [_np(v) for v in _flat(model(xs, training=False))]
    b = [_np(v) for v in _flat(small(xs, training=False))]
    for u, v in zip(a, b):
        if u.shape != v.shape or not np.allclose(u, v, atol=atol * (1 + np.abs(u).max()), rtol=1e-4):
            raise CompactionError("the compacted model's outputs differ from the original's; please report this model")


def _flat(y: Any) -> list:
    return list(y) if isinstance(y, (list, tuple)) else list(y.values()) if isinstance(y, dict) else [y]
