"""The CPU runtimes a pruned model is deployed with, and side-by-side latency over all of them.

Every model, dense and pruned alike, goes through the same runtime, so a speedup never mixes a
deployment gain with a pruning gain:

- ``eager``: the PyTorch module as it is.
- ``torchscript``: ``torch.jit.trace`` + ``torch.jit.freeze`` — BatchNorm folded into the convs,
  no Python between ops.
- ``onnxruntime``: an ONNX export run by ONNX Runtime's CPU provider (all graph optimizations),
  when onnxruntime is installed.
"""
from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
from typing import Callable

import torch
from torch import nn

Runner = Callable[[torch.Tensor], object]


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


def available() -> list[str]:
    """Runtime names usable here (onnxruntime only when installed)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return ["eager", "torchscript"]
    return ["eager", "torchscript", "onnxruntime"]


def build(model: nn.Module, x: torch.Tensor, runtime: str) -> Runner:
    """``model`` deployed with ``runtime``; ``x`` is an example input (the batch size may change later)."""
    if runtime == "eager":
        return model.eval()
    return _torchscript(model, x) if runtime == "torchscript" else _onnxruntime(model, x)


def latencies(runners: dict[str, Runner], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call, all runners interleaved in every round so load drifts hit all alike."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    with torch.inference_mode():
        for run in runners.values():
            run(x)
            run(x)
        for _ in range(repeats):
            for name, run in runners.items():
                t0 = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
