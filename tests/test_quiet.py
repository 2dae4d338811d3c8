"""Normal runs print no alarming third-party warnings: torch's sparse "SEGFAULT" invariant warning from
pk.sparsify, and the ONNX exporter's warnings and log lines unless verbose=True is asked for."""
from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import torch, prunekit as pk
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
pk.prune(m, sparsity=0.9)
fast = pk.sparsify(m, torch.randn(1, 64), policy="sparse")
fast(torch.randn(1, 64))
{onnx}
print("ok")
"""


def _stderr(code: str) -> str:
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
    return done.stderr


def test_sparsify_prints_no_sparse_invariant_warning():
    err = _stderr(SCRIPT.format(onnx=""))
    assert "SEGFAULT" not in err and "Warning" not in err, err


def test_onnx_export_is_quiet_unless_verbose(tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    err = _stderr(SCRIPT.format(onnx=f"pk.export_onnx(m, torch.randn(2, 64), {str(path)!r})"))
    assert "Warning" not in err and "torchvision" not in err, err
