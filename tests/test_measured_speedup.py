"""Measured speedups are measurements: dense forms read 1.00× by construction, every sweep measures its
noise floor, and a real slowdown of one deployed form shows in the report above that floor."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.bench import Store, load, report, sweep
from prunekit.bench import runner
from prunekit.bench.speed import above_floor, computes_dense, noise_floor

NEURONS = {"name": "neurons", "structure": "neurons", "scope": "layer"}
CONFIG = {
    "name": "speed", "datasets": ["synthetic"], "models": ["mlp"], "methods": ["global-magnitude", NEURONS],
    "compressions": [2, 4], "seeds": [0], "train": {"epochs": 1, "batch_size": 100, "lr": 0.05},
    "finetune": {"epochs": 1, "batch_size": 100, "lr": 0.01},
    "measure": {"batch_sizes": [8], "repeats": 15, "warmup": 2},
}


def _config(tmp_path, **measure):
    import yaml

    path = tmp_path / "speed.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "measure": {**CONFIG["measure"], **measure}}))
    return load(path)


def _runs(out):
    with Store(out) as store:
        return store.runs("done")


def test_a_sweep_deployed_dense_reads_one_by_construction_with_a_noise_floor(tmp_path):
    assert sweep(_config(tmp_path, deploy="dense"), tmp_path / "out").done == 4
    runs = _runs(tmp_path / "out")
    for r in runs:
        m = r["metrics"]
        assert r["deployed_as"] == "dense" and m["speedup_by_construction"]
        assert m["measured_speedup"] == m["measured_speedup_b8"] == 1.0
        assert m["noise_ratio"] > 0 and m["noise_ratio"] != 1.0  # dense vs its twin was really timed
    text = report(tmp_path / "out").read_text()
    assert text.count("1.00× (dense, by construction)") == 4
    assert "Noise floor of measured speedups: ×" in text
    csv = (tmp_path / "out" / "runs.csv").read_text()
    assert "noise_ratio" in csv.splitlines()[0]


class Slowed(nn.Module):
    """A deployed form that computes the same outputs four times over: a known 4× slowdown."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        for _ in range(3):
            self.inner(x)
        return self.inner(x)


def test_an_injected_slowdown_of_one_deployed_form_shows_above_the_floor(tmp_path, monkeypatch):
    real = runner.deploy

    def deploy(model, x, structure, choice="auto"):
        small, form = real(model, x, structure, choice)
        return (Slowed(small), "compact (slowed 4x)") if structure == "neurons" else (small, form)

    monkeypatch.setattr(runner, "deploy", deploy)
    torch.manual_seed(0)
    assert sweep(_config(tmp_path, deploy="dense"), tmp_path / "out").done == 4
    runs = {(r["method"], r["compression"]): r["metrics"] for r in _runs(tmp_path / "out")}
    floor = noise_floor(m["noise_ratio"] for m in runs.values())
    for c in (2.0, 4.0):
        slow, dense = runs[("neurons", c)], runs[("global-magnitude", c)]
        assert dense["measured_speedup"] == 1.0 and dense["speedup_by_construction"]
        assert not slow["speedup_by_construction"]
        assert slow["measured_speedup"] < 0.6 and above_floor(slow["measured_speedup"], floor)
        assert slow["measured_speedup_q1"] <= slow["measured_speedup"] <= slow["measured_speedup_q3"] + 1e-12
    text = report(tmp_path / "out").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| neurons |")]
    assert len(rows) == 2
    for row in rows:
        cell = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert float(cell.split("×")[0]) < 0.6 and "inside noise floor" not in cell, row


@pytest.mark.parametrize("form, dense", [("dense", True), ("dense (sparse kernels not faster)", True),
                                         ("2:4 (no CPU kernel; dense)", True), ("compact", False),
                                         ("sparse (2/3 layers)", False)])
def test_which_forms_compute_the_dense_model(form, dense):
    assert computes_dense(form) is dense


def test_noise_floor_is_symmetric_and_covers_most_ratios():
    assert noise_floor([]) is None
    assert noise_floor([1.1, 1 / 1.1]) == pytest.approx(1.1)
    ratios = [1.0 + i / 1000 for i in range(100)]  # 1.000 … 1.099
    assert noise_floor(ratios) == pytest.approx(1.094)
    assert not above_floor(1.05, 1.1) and above_floor(1.2, 1.1) and above_floor(0.8, 1.1)
