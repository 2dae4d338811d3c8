"""pk.export_onnx: write a pruned model (masked, compacted or sparsified) as ONNX, checked in onnxruntime.

Masks are buffers the forward pass never reads, so the graph holds only the (zeroed) weights. A model
from :func:`prunekit.sparse.sparsify` is exported through its dense equivalent, since ONNX has no CSR
matmul that runtimes agree on.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import ExportError
from ..inputs import check_forward
from .inference import densify
from .kernels import SparseLinear


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def check_onnx(path: str | Path, model: nn.Module, example_inputs: Any, rtol: float = 1e-4) -> float:
    """Run the ONNX file in onnxruntime on ``example_inputs``; the largest difference from ``model``.

    Raises :class:`ExportError` when an output differs beyond ``rtol`` (relative to the output's scale).
    """
    import onnxruntime as ort

    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.detach().cpu().numpy() for i, a in zip(session.get_inputs(), args)}
    got = session.run(None, feeds)
    with torch.no_grad():
        want = _tensors(model(*args))
    if len(got) != len(want):
        raise ExportError(f"{path} returns {len(got)} outputs, the model {len(want)}")
    worst = 0.0
    for g, w in zip(got, want):
        w = w.detach().cpu().float()
        g = torch.from_numpy(g).float()
        scale = max(float(w.abs().max()) if w.numel() else 0.0, 1e-12)
        if g.shape != w.shape or not torch.allclose(g, w, rtol=rtol, atol=rtol * scale):
            raise ExportError(f"{path} disagrees with the PyTorch model beyond rtol {rtol}")
        worst = max(worst, float((g - w).abs().max()) if w.numel() else 0.0)
    return worst


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Keep the exporter's warnings and log lines (optional torchvision ops, deprecations) off a normal run."""
    if verbose:
        yield
        return
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: str | Path,
    *,
    dynamic_batch: bool = True,
    verify: bool = True,
    opset: int | None = None,
    verbose: bool = False,
) -> Path:
    """Export ``model`` in eval mode to ONNX at ``path`` with torch's exporter; returns the path.

    ``example_inputs`` is a tensor or a tuple of positional tensors. ``dynamic_batch`` leaves the
    first axis of every input free. ``verify`` runs the file in onnxruntime and raises
    :class:`ExportError` unless its outputs equal PyTorch's (rtol 1e-4). The exporter's own warnings
    and log lines are shown only with ``verbose=True``.
    """
    from torch.export import Dim

    args = check_forward(model, example_inputs)
    if any(isinstance(m, SparseLinear) for m in model.modules()):
        model = densify(model)
    dynamic = tuple({0: Dim.DYNAMIC} if dynamic_batch and a.dim() > 0 else None for a in args)
    names = ["input"] if len(args) == 1 else [f"input{i}" for i in range(len(args))]
    was_training = model.training
    model.eval()
    try:
        with _quiet(verbose):
            torch.onnx.export(
                model, args, str(path), dynamo=True, input_names=names, dynamic_shapes=dynamic,
                opset_version=opset, verbose=verbose,
            )
        if verify:
            check_onnx(path, model, args)
    except ExportError:
        raise
    except Exception as err:  # the exporter raises many types; the user needs the layer and the cause
        raise ExportError(
            f"torch.onnx.export could not export {type(model).__name__}: {type(err).__name__}: {err}"
        ) from err
    finally:
        model.train(was_training)
    return Path(path)
