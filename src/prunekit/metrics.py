"""Sizes, compute and time: parameters, nonzeros, compression, multiply-accumulates (MACs), latency.

MACs are counted from one real forward pass on ``example_inputs`` (so strides, padding, dilation,
groups and any leading dimensions are whatever the model really does) for these layers:

* ``Linear``: (output elements / out_features) × in_features × out_features;
* ``Conv1d/2d/3d``: N × output positions × weight.numel() (= Cout × Cin/groups × kernel volume);
  positions that overlap padding are counted, as the dense kernel computes them;
* ``ConvTranspose1d/2d/3d``: N × input positions × weight.numel();
* ``LSTM`` / ``GRU`` / ``RNN``: MACs per time step (every ``weight_*`` tensor, all layers and directions)
  × time steps × batch (for a ``PackedSequence``, its real steps: padding is not counted);
* ``MultiheadAttention``: query tokens × the query rows of ``in_proj_weight`` plus key (value) tokens ×
  its key (value) rows; its ``out_proj`` (read directly, never called) is counted on that layer.

Nonzero MACs use the weight's nonzero count in place of ``weight.numel()``. Biases, normalization,
activations, pooling, residual adds and attention's score products are not counted.

Latency has one timer, :func:`time_interleaved`, used by ``sparsify``, the harness and every bench script.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .inputs import check_forward
from .structures.tensors import is_attention

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TCONV = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass
class LayerSummary:
    """One counted layer: its parameters, nonzeros and MACs (summed over every call)."""

    name: str
    kind: str
    params: int
    nonzero_params: int
    macs: int = 0
    nonzero_macs: int = 0


@dataclass
class Summary:
    """Whole-model size and compute; ``compression`` and ``speedup`` are ratios of the counts."""

    params: int
    nonzero_params: int
    macs: int
    nonzero_macs: int
    layers: list[LayerSummary] = field(default_factory=list)

    @property
    def compression(self) -> float:
        return self.params / max(self.nonzero_params, 1)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_params / max(self.params, 1)

    @property
    def speedup(self) -> float:
        return self.macs / max(self.nonzero_macs, 1)

    def __str__(self) -> str:
        head = f"{'layer':<28} {'type':<16} {'params':>11} {'nonzero':>11} {'MACs':>14} {'nonzero MACs':>14}"
        rows = [head, "-" * len(head)]
        for l in self.layers:
            rows.append(
                f"{l.name[:28]:<28} {l.kind[:16]:<16} {l.params:>11,} {l.nonzero_params:>11,} "
                f"{l.macs:>14,} {l.nonzero_macs:>14,}"
            )
        rows.append("-" * len(head))
        rows.append(
            f"{'total':<28} {'':<16} {self.params:>11,} {self.nonzero_params:>11,} "
            f"{self.macs:>14,} {self.nonzero_macs:>14,}"
        )
        rows.append(
            f"compression {self.compression:.2f}x (sparsity {self.sparsity:.2%}), "
            f"theoretical speedup {self.speedup:.2f}x"
        )
        return "\n".join(rows)


def _unique_params(model: nn.Module) -> list[torch.Tensor]:
    return list({id(p): p for p in model.parameters()}.values())


def _is_conv1d(module: nn.Module) -> bool:
    """A transformers ``Conv1D`` (GPT-2): a linear map whose weight is stored (in, out), ``nf`` outputs."""
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.dim() == 2
            and weight.shape[1] == getattr(module, "nf", None))


def _layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> tuple[int, int]:
    weight = module.weight
    nnz = int(torch.count_nonzero(weight))
    if _is_conv1d(module):
        positions = output.numel() // module.nf
    elif isinstance(module, nn.Linear):
        positions = output.numel() // module.out_features
    elif isinstance(module, _CONV):
        positions = output.numel() // module.out_channels
    else:  # transposed conv: every input element scatters through the kernel
        positions = inputs[0].numel() // module.in_channels
    return positions * weight.numel(), positions * nnz


def _tokens(x: Any) -> int:
    """Vectors in a sequence input: every position of every batch entry (a PackedSequence's real steps)."""
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return x.data.shape[0]
    return x.numel() // max(x.shape[-1], 1) if isinstance(x, torch.Tensor) and x.dim() else 0


def _recurrent_macs(module: nn.RNNBase, inputs: tuple) -> tuple[int, int]:
    weights = [getattr(module, n) for n in module._flat_weights_names if n.startswith("weight_")]
    steps = _tokens(inputs[0]) if inputs else 0
    return steps * sum(w.numel() for w in weights), steps * sum(int(torch.count_nonzero(w)) for w in weights)


def _attention_macs(module: nn.Module, args: tuple, kwargs: dict) -> list[tuple[nn.Module, int, int]]:
    """(layer, MACs, nonzero MACs) of the input projections (on ``module``) and of ``out_proj``."""
    q, k, v = (args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(("query", "key", "value")))
    tokens = [_tokens(t) for t in (q, k, v)]
    if isinstance(module.in_proj_weight, torch.Tensor):
        weights = module.in_proj_weight.chunk(3)
    else:
        weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    out = module.out_proj.weight
    return [(module, sum(n * w.numel() for n, w in zip(tokens, weights)),
             sum(n * int(torch.count_nonzero(w)) for n, w in zip(tokens, weights))),
            (module.out_proj, tokens[0] * out.numel(), tokens[0] * int(torch.count_nonzero(out)))]


def layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Dense MACs of one call of a Linear, (transposed) Conv or transformers Conv1D module; 0 for any other."""
    if isinstance(module, (nn.Linear, *_CONV, *_TCONV)) or _is_conv1d(module):
        return _layer_macs(module, inputs, output)[0]
    return 0


def summary(model: nn.Module, example_inputs: Any) -> Summary:
    """Count parameters, nonzeros and the MACs of one forward pass on ``example_inputs``.

    ``example_inputs`` is a tensor or a tuple of positional inputs. The model runs in eval mode under
    ``torch.no_grad`` and is returned to its mode afterwards.
    """
    check_forward(model, example_inputs)
    layers: dict[nn.Module, LayerSummary] = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, *_CONV, *_TCONV, nn.RNNBase)) or _is_conv1d(module) or is_attention(module):
            own = list(module.parameters(recurse=False))
            layers[module] = LayerSummary(
                name,
                type(module).__name__,
                sum(p.numel() for p in own),
                sum(int(torch.count_nonzero(p)) for p in own),
            )

    def hook(module: nn.Module, inputs: tuple, kwargs: dict, output: Any) -> None:
        if is_attention(module):
            counts = _attention_macs(module, inputs, kwargs)
        elif isinstance(module, nn.RNNBase):
            counts = [(module, *_recurrent_macs(module, inputs))]
        else:
            counts = [(module, *_layer_macs(module, inputs, output))]
        for layer, macs, nz in counts:
            if layer in layers:
                layers[layer].macs += macs
                layers[layer].nonzero_macs += nz

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
            model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    params = _unique_params(model)
    return Summary(
        params=sum(p.numel() for p in params),
        nonzero_params=sum(int(torch.count_nonzero(p)) for p in params),
        macs=sum(l.macs for l in layers.values()),
        nonzero_macs=sum(l.nonzero_macs for l in layers.values()),
        layers=list(layers.values()),
    )


@dataclass
class Timing:
    """Seconds per call of each candidate: median, interquartile range and minimum, how it was timed,
    and every timing in round order (``samples[name][r]`` ran in round ``r`` beside the others')."""

    median: dict[str, float]
    spread: dict[str, float]
    min: dict[str, float]
    threads: int
    repeats: int
    warmup: int
    samples: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, slow: str, fast: str) -> float:
        """How many times faster ``fast`` is than ``slow`` (ratio of medians)."""
        return self.median[slow] / self.median[fast]


def time_interleaved(candidates: dict[str, Callable[[], Any]], repeats: int = 15, warmup: int = 2, *,
                     device: torch.device | str | None = None) -> Timing:
    """Time each zero-argument callable ``repeats`` times, round-robin, after ``warmup`` untimed rounds.

    Every round runs all candidates, starting from a different one each round, so load from other
    processes, clock drift and cache warmth hit every candidate alike and ratios of the medians are
    fair. Runs under ``torch.no_grad``; on CUDA, ``device`` is synchronized around every call.
    """
    if not candidates or repeats < 1 or warmup < 0:
        raise ValueError("time_interleaved needs candidates, repeats >= 1 and warmup >= 0")
    device = torch.device(device) if device is not None else None
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda *_: None)
    names = list(candidates)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in candidates.values():
                fn()
        for r in range(repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                sync(device)
                start = time.perf_counter()
                candidates[name]()
                sync(device)
                times[name].append(time.perf_counter() - start)
    return Timing(
        median={n: statistics.median(t) for n, t in times.items()},
        spread={n: _iqr(t) for n, t in times.items()},
        min={n: min(t) for n, t in times.items()},
        threads=torch.get_num_threads(), repeats=repeats, warmup=warmup, samples=times,
    )


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]
