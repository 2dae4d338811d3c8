"""The CPU runtimes a model is deployed with, so dense and pruned models are timed the same way.

A speedup never mixes a deployment gain with a pruning gain when every model goes through the same
runtime:

- ``eager``: the PyTorch module as it is.
- ``torchscript``: ``torch.jit.trace`` + ``torch.jit.freeze`` (BatchNorm folded into the convs,
  no Python between ops).
- ``onnxruntime``: an ONNX export run by ONNX Runtime's CPU provider with all graph optimizations,
  when onnxruntime is installed (an optional dependency, imported only here and only when used).
"""
from __future__ import annotations

import copy
import io
import warnings
from typing import Callable

import torch
from torch import nn

from .errors import PruneError
from .metrics import Timing, time_interleaved

Runner = Callable[[torch.Tensor], object]


def _eager(model: nn.Module, x: torch.Tensor) -> Runner:
    return model.eval()


def _torchscript(model: nn.Module, x: torch.Tensor) -> Runner:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(copy.deepcopy(model).eval(), x))


def _onnxruntime(model: nn.Module, x: torch.Tensor) -> Runner:
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(model).eval(), (x,), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = torch.get_num_threads()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    return lambda t: session.run(None, {"x": t.numpy()})


RUNTIMES: dict[str, Callable[[nn.Module, torch.Tensor], Runner]] = {
    "eager": _eager, "torchscript": _torchscript, "onnxruntime": _onnxruntime,
}


def available() -> list[str]:
    """Runtime names usable here (onnxruntime only when installed)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return [n for n in RUNTIMES if n != "onnxruntime"]
    return list(RUNTIMES)


def build(model: nn.Module, x: torch.Tensor, runtime: str) -> Runner:
    """``model`` deployed with ``runtime``; ``x`` is an example input (the batch size may change later)."""
    if runtime not in RUNTIMES:
        raise PruneError(f"unknown runtime {runtime!r}; valid runtimes: {', '.join(RUNTIMES)}")
    if runtime not in available():
        raise PruneError(f"runtime {runtime!r} is not installed here; install onnxruntime or use {available()}")
    return RUNTIMES[runtime](model, x)


def latencies(runners: dict[str, Runner], x: torch.Tensor, repeats: int, warmup: int = 2) -> Timing:
    """Seconds per call of each runner on ``x``, timed interleaved by :func:`prunekit.metrics.time_interleaved`."""
    with torch.inference_mode():
        return time_interleaved({n: (lambda run=run: run(x)) for n, run in runners.items()}, repeats, warmup)
