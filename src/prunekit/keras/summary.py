"""``summary``: parameters, nonzeros and multiply-accumulates of a Keras model, before → after pruning.

MACs are counted per prunable layer for one sample: a kernel entry costs one MAC per output position
(Dense on a sequence: per timestep; conv: per output pixel; LSTM/GRU: input + recurrent kernels per
timestep). ``nonzero_macs`` counts only nonzero kernel entries, i.e. what a sparse kernel would do;
a compacted model's MACs are real dense MACs. Biases, normalization and activations are not counted.
With ``baseline=`` (the dense model) "before" is the baseline and "after" is ``model``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import require_keras
from .targets import Target, candidates


@dataclass
class LayerRow:
    name: str
    kind: str
    params: int
    nonzeros: int
    macs: int
    nonzero_macs: int


@dataclass
class Summary:
    """Totals of a model (``params``, ``nonzeros``, ``macs``, ``nonzero_macs``) and of its ``baseline``."""

    params: int
    nonzeros: int
    macs: int
    nonzero_macs: int
    layers: list[LayerRow] = field(default_factory=list)
    baseline_params: int | None = None
    baseline_macs: int | None = None

    @property
    def before_params(self) -> int:
        return self.params if self.baseline_params is None else self.baseline_params

    @property
    def before_macs(self) -> int:
        return self.macs if self.baseline_macs is None else self.baseline_macs

    @property
    def compression(self) -> float:
        """Parameters before / nonzero parameters after (ShrinkBench's compression)."""
        return self.before_params / max(1, self.nonzeros)

    @property
    def mac_reduction(self) -> float:
        """MACs before / nonzero MACs after (a theoretical speedup)."""
        return self.before_macs / max(1, self.nonzero_macs)

    def __str__(self) -> str:
        head = f"{'layer':<24} {'kind':<9} {'params':>10} {'nonzeros':>10} {'MACs':>12} {'nonzero MACs':>13}"
        rows = [f"{r.name:<24} {r.kind:<9} {r.params:>10,} {r.nonzeros:>10,} {r.macs:>12,} {r.nonzero_macs:>13,}"
                for r in self.layers]
        return "\n".join([head, *rows,
                          f"params   {self.before_params:,} → {self.nonzeros:,} nonzero "
                          f"(compression {self.compression:.2f}×, sparsity {1 - self.nonzeros / max(1, self.before_params):.1%})",
                          f"MACs     {self.before_macs:,} → {self.nonzero_macs:,} ({self.mac_reduction:.2f}× fewer)"])


def _positions(t: Target, owners: dict[int, Any]) -> int:
    """Output positions per sample at which ``t``'s kernel is applied (1 when the shape is unknown)."""
    layer = owners.get(id(t.layer), t.layer)
    try:
        shape = tuple(layer.input.shape) if t.kind == "rnn" else tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return 1
    inner = shape[1:2] if t.kind == "rnn" else shape[1:-1]
    return int(np.prod([d or 1 for d in inner]))


def summary(model: Any, baseline: Any = None) -> Summary:
    """Parameters, nonzeros and MACs of ``model``'s prunable layers and totals (see module docs)."""
    keras = require_keras()
    owners = {id(layer.cell): layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, keras.layers.RNN)}
    rows = []
    for t in candidates(model):
        value = keras.ops.convert_to_numpy(t.variable.value)
        pos = _positions(t, owners)
        nz = int(np.count_nonzero(value))
        rows.append(LayerRow(t.name + ("/recurrent" if "recurrent" in t.path else ""), type(t.layer).__name__,
                             value.size, nz, value.size * pos, nz * pos))
    params = sum(int(np.prod(v.shape)) for v in model.weights)
    zeros = sum(r.params - r.nonzeros for r in rows)
    out = Summary(params, params - zeros, sum(r.macs for r in rows), sum(r.nonzero_macs for r in rows), rows)
    if baseline is not None:
        base = summary(baseline)
        out.baseline_params, out.baseline_macs = base.params, base.macs
    return out
