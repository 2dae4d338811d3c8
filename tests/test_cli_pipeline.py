"""The CLI's whole path: prune → finetune → evaluate ends in a file smaller than the input; a user's own
model (module:factory) and data (module:function, folder of tensors) load from the current directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit as pk
from prunekit import cli

ROOT = Path(__file__).parents[1]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


def _top1(text: str) -> float:
    return float(text.split("top-1 ")[1].split("%")[0])


@pytest.mark.parametrize("structure, form", [(["--compression", "8"], "sparse"),
                                             (["--structure", "channels", "--compression", "2"], "compact")])
def test_prune_finetune_evaluate_lenet5_on_mnist_ends_smaller(shared, tmp_path, capsys, structure, form):
    data = ["--data", "mnist", "--data-dir", str(shared / "datasets")]
    weights, pruned, tuned = tmp_path / "lenet5.pt", tmp_path / "pruned", tmp_path / "tuned"
    torch.manual_seed(0)
    torch.save(pk.models.create("lenet5").state_dict(), weights)
    report = tmp_path / "layers.json"
    assert cli.main(["prune", "lenet5", "--weights", str(weights), "-o", str(pruned), *structure,
                     "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"({form}, " in out and "→" in out and "conv1" in out
    layers = json.loads(report.read_text())
    assert [r["layer"] for r in layers["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert layers["totals"]["form"] == form and layers["totals"]["bytes_after"] == _size(pruned)
    assert cli.main(["finetune", "lenet5", "--weights", str(pruned), "-o", str(tuned), *data, "--subset", "3000",
                     "--epochs", "2", "--lr", "0.05"]) == 0
    assert f"({form}, " in capsys.readouterr().out
    assert cli.main(["evaluate", "lenet5", "--weights", str(tuned), *data]) == 0
    out = capsys.readouterr().out
    assert _top1(out) > 50  # 10 % is chance: fine-tuning trained the pruned model
    assert _size(tuned) < _size(weights) / 1.5
    if form == "sparse":  # the pruned weights stayed exactly zero through fine-tuning
        model = pk.load(tuned, pk.models.create("lenet5"))
        assert pk.sparsity(model) == pytest.approx(pk.sparsity(pk.load(pruned, pk.models.create("lenet5"))))


FACTORY = """
import torch
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

def splits():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 1, 8, 8, generator=g), torch.randint(0, 10, (300,), generator=g)
    return (x[:200], y[:200]), None, (x[200:], y[200:])
"""


def test_module_factory_and_dataset_function_import_from_the_current_directory(tmp_path):
    (tmp_path / "mynet.py").write_text(FACTORY)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    script = Path(sys.executable).with_name("prunekit")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from prunekit.cli import main; sys.exit(main())"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = lambda *argv: subprocess.run([*command, *argv], cwd=tmp_path, env=env, capture_output=True, text=True)  # noqa: E731
    pruned = run("prune", "mynet:build", "--input-shape", "1,8,8", "--weights", "w.pt", "-o", "p.safetensors",
                 "--sparsity", "0.75")
    assert pruned.returncode == 0, pruned.stderr
    evaluated = run("evaluate", "mynet:build", "--input-shape", "1,8,8", "--weights", "p.safetensors",
                    "--data", "mynet:splits")
    assert evaluated.returncode == 0 and "top-1" in evaluated.stdout, evaluated.stderr
    missing = run("summary", "nosuchmodule:build", "--input-shape", "1,8,8")
    assert missing.returncode == 1 and "importable from the current directory" in missing.stderr


def test_a_folder_of_tensors_is_a_dataset_read_safely(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 1, 8, 8, generator=g), torch.randint(0, 10, (100,), generator=g)
    np.savez(tmp_path / "train.npz", x=x.numpy(), y=y.numpy())
    torch.save({"x": x[:30], "y": y[:30]}, tmp_path / "test.pt")
    train, val, test = pk.data.load(str(tmp_path), val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (80, 20, 30) and train.num_classes == 10
    torch.save({"x": x, "y": y, "code": pk.models.create("mlp")}, tmp_path / "test.pt")  # pickled module: refused
    with pytest.raises(pk.PruneError, match="cannot read .*test.pt as tensors"):
        pk.data.load(str(tmp_path))
