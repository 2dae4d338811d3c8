"""bench/gpu_24.py: its measuring loop on this CPU (CSR stands in for 2:4) and its refusal without a GPU."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from test_bench_lm import ROOT, bench_script


@pytest.mark.filterwarnings("ignore:2.4 semi-structured kernels need a CUDA GPU")
def test_gpu_24_measures_every_layer_method_and_token_count(monkeypatch):
    gpu = bench_script(monkeypatch, "gpu_24")
    shapes = {"small": (8, 16), "wide": (4, 32)}
    rows = gpu.measure(shapes, (1, 5), gpu.METHODS, "cpu", torch.float32, calib_tokens=64, repeats=2)
    assert [(r["layer"], r["method"], r["tokens"]) for r in rows] == [
        (s, m, n) for s in shapes for m in gpu.METHODS for n in (1, 5)]
    for r in rows:
        assert r["choice"] in ("dense", "csr") and r["dense_ms"] > 0 and r["sparse_ms"] > 0
    text = gpu.markdown({"device": "cpu", "torch": torch.__version__, "dtype": "float32", "calib_tokens": 64, "rows": rows})
    assert text.startswith(gpu.START) and text.endswith(gpu.END)
    assert "| small (8 × 16) | sparsegpt |" in text and text.count("×") >= 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a CUDA GPU")
def test_gpu_24_says_why_and_writes_nothing_without_a_gpu():
    before = (ROOT / "bench" / "RESULTS.md").read_text()
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_24.py"), "--quick"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""}, timeout=120)
    assert run.returncode == 1 and "no CUDA GPU" in run.stderr and "nothing measured" in run.stderr
    assert (ROOT / "bench" / "RESULTS.md").read_text() == before
