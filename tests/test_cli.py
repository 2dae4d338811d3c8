"""The prunekit command: --help everywhere, one-line errors with non-zero exits, prune/summary/demo work."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import prunekit as pk
from prunekit import cli
from prunekit.bench import DEMO_CONFIG

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("command", [[], ["demo"], ["bench"], ["report"], ["prune"], ["summary"], ["gap"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main([*command, "--help"])
    assert exit.value.code == 0
    assert "usage: prunekit" in capsys.readouterr().out


def _fail(argv, capsys) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    return err


def test_bad_input_gives_one_line_and_exit_1(tmp_path, capsys):
    assert "cannot read config" in _fail(["bench", str(tmp_path / "no.yaml"), "--out", str(tmp_path)], capsys)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "datasets": ["digits"], "models": ["mlp"],
                                   "methods": ["l1-norm"], "compressions": [2]}))
    err = _fail(["bench", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert "methods.0: unknown method 'l1-norm'; allowed values: global-gradient" in err
    assert "holds no runs.db" in _fail(["report", str(tmp_path)], capsys)
    missing = _fail(["bench", str(ROOT / "configs" / "mnist-lenet.yaml"), "--out", str(tmp_path / "m"),
                     "--data-dir", str(tmp_path)], capsys)
    assert "train-images-idx3-ubyte.gz" in missing and not (tmp_path / "m").exists()
    assert "--workers must be >= 1" in _fail(["demo", "--out", str(tmp_path), "--workers", "0"], capsys)
    assert "unknown model 'resnet18'" in _fail(["summary", "resnet18"], capsys)
    assert "pass --input-shape" in _fail(["summary", "torch.nn:Identity"], capsys)
    weights = tmp_path / "w.pt"
    torch.save(pk.models.create("mlp", in_channels=1, input_size=8).state_dict(), weights)
    base = ["prune", "mlp", "--input-shape", "1,8,8", "--weights", str(weights), "-o", str(tmp_path / "p.pt")]
    assert "sparsity must be in [0, 1)" in _fail([*base, "--sparsity", "1.5"], capsys)
    assert "pass --data DATASET" in _fail([*base, "--sparsity", "0.5", "--method", "layer-gradient"], capsys)
    assert "does not exist" in _fail([*base[:4], "--weights", str(tmp_path / "none.pt"), "-o", "x.pt",
                                      "--sparsity", "0.5"], capsys)


def test_usage_errors_exit_2(capsys):
    for argv in (["frobnicate"], ["bench"], ["prune", "mlp", "--weights", "w.pt", "-o", "x.pt"],
                 ["summary", "mlp", "--input-shape", "a,b"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(argv)
        assert exit.value.code == 2


def test_prune_then_summary_round_trip(tmp_path, capsys):
    weights, out = tmp_path / "w.pt", tmp_path / "pruned.safetensors"
    torch.save(pk.models.create("mlp", in_channels=1, input_size=8).state_dict(), weights)
    assert cli.main(["prune", "mlp", "--input-shape", "1,8,8", "--weights", str(weights), "-o", str(out),
                     "--compression", "4", "--method", "global-gradient", "--data", "digits"]) == 0
    assert "compression 4.00x" in capsys.readouterr().out
    assert cli.main(["summary", "mlp", "--input-shape", "1,8,8", "--weights", str(out)]) == 0
    assert "compression 4.00x" in capsys.readouterr().out


def test_demo_runs_the_harness_and_writes_store_and_report(tmp_path, monkeypatch, capsys):
    tiny = yaml.safe_load(DEMO_CONFIG.read_text())
    tiny.update(models=["cnn"], compressions=[2, 4], seeds=[0], train={"epochs": 1}, finetune={"epochs": 1},
                measure={"repeats": 2})
    path = tmp_path / "tiny-demo.yaml"
    path.write_text(yaml.safe_dump(tiny))
    monkeypatch.setattr("prunekit.bench.DEMO_CONFIG", path)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--no-progress"]) == 0
    assert "10 runs done" in capsys.readouterr().out
    assert {"runs.db", "report.md", "runs.csv", "accuracy_vs_compression.png"} <= {p.name for p in out.iterdir()}
    assert cli.main(["demo", "--out", str(out)]) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert cli.main(["demo", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "0 runs done, 10 already finished" in capsys.readouterr().out


def _helps(parser) -> list[str]:
    import argparse

    out = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += [h for p in action.choices.values() for h in _helps(p)]
    return out


def test_help_is_plain_text_and_names_every_command():
    helps = _helps(cli.build_parser())
    assert len(helps) >= 10 and not [h for h in helps if "``" in h or ":func:" in h or ":class:" in h]
    for command in ("prune", "finetune", "evaluate", "models", "bench", "report", "demo"):
        assert command in helps[0]


def test_models_lists_the_zoo(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in pk.models.names()) and "431,080" in out  # lenet5's parameters


def test_a_collapsing_prune_names_the_flag_that_allows_it(tmp_path, capsys):
    """A fresh MLP whose small output layer would lose every weight at 99 % global magnitude."""
    weights, out = tmp_path / "w.pt", tmp_path / "pruned"
    model = pk.models.create("mlp", in_channels=1, input_size=8)
    with torch.no_grad():
        list(model.parameters())[-2].mul_(1e-3)  # the last weight is tiny: a global ranking empties it
    torch.save(model.state_dict(), weights)
    command = ["prune", "mlp", "--input-shape", "1,8,8", "--weights", str(weights), "-o", str(out), "--sparsity", "0.9"]
    assert cli.main(command) != 0
    assert "--allow-collapse" in capsys.readouterr().err
    assert cli.main([*command, "--allow-collapse"]) == 0
