"""pk.export_onnx: masked, compacted and sparsified models run in onnxruntime with PyTorch's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import prunekit as pk

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch's ONNX exporter needs it


def run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 32), nn.ReLU(),
        nn.Linear(32, 10),
    )


def test_masked_model_equals_pytorch_at_any_batch(tmp_path):
    model = convnet()
    pk.prune(model, sparsity=0.9)
    path = pk.export_onnx(model, torch.randn(2, 1, 8, 8), tmp_path / "m.onnx")
    assert model.training  # mode restored
    model.eval()
    for batch in (1, 5):
        x = torch.randn(batch, 1, 8, 8)
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(run(path, x), want, rtol=1e-4, atol=1e-5)
    import onnx

    names = {i.name for i in onnx.load(str(path)).graph.initializer}
    assert not any(n.endswith("_mask") for n in names)  # masks are not part of the graph


def compacted(model: nn.Sequential) -> nn.Sequential:
    """Drop the hidden neurons that neuron pruning zeroed: the smaller dense model compaction gives."""
    keep = model[0].weight.abs().sum(1) != 0
    small = nn.Sequential(nn.Linear(16, int(keep.sum())), nn.ReLU(), nn.Linear(int(keep.sum()), 4))
    with torch.no_grad():
        small[0].weight.copy_(model[0].weight[keep])
        small[0].bias.copy_(model[0].bias[keep])
        small[2].weight.copy_(model[2].weight[:, keep])
        small[2].bias.copy_(model[2].bias)
    return small


def test_compacted_and_sparsified_models(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    pk.prune(model, sparsity=0.5, structure="neurons", exclude=["2"])
    small = compacted(model)
    x = torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))
        want = model(x).numpy()
    np.testing.assert_allclose(run(pk.export_onnx(small, x, tmp_path / "small.onnx"), x), want, rtol=1e-4, atol=1e-5)
    fast = pk.sparsify(model, x, policy="sparse")
    np.testing.assert_allclose(run(pk.export_onnx(fast, x, tmp_path / "fast.onnx"), x), want, rtol=1e-4, atol=1e-5)


def test_mismatch_is_reported(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4))
    x = torch.randn(2, 4)
    path = pk.export_onnx(model, x, tmp_path / "m.onnx")
    with torch.no_grad():
        model[0].bias += 1
    with pytest.raises(pk.ExportError, match="disagrees"):
        pk.sparse.check_onnx(path, model, x)
