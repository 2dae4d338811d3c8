"""`prunekit gap`: the subcommand module on its own argparse parser (cli.py registers it)."""
from __future__ import annotations

import argparse
import json

import pytest

from prunekit.cli import gap as cli_gap


def _parse(argv):
    parser = argparse.ArgumentParser(prog="prunekit")
    cli_gap.add_parser(parser.add_subparsers())
    return parser.parse_args(["gap", *argv])


def test_gap_command_prints_tables_and_writes_json_and_plot(tmp_path, capsys):
    args = _parse(["--net", "fcn:8,32,32,4", "--sparsity", "0.3", "0.7", "--trials", "4",
                   "--n-inputs", "96", "--eps", "2.0", "--delta", "0.1", "--out", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "max sparsity per layer" in out and "all layers together" in out
    result = json.loads((tmp_path / "gap.json").read_text())
    assert {(r["score"], round(r["sparsity"], 1)) for r in result["gap"]} == {
        ("random", 0.3), ("random", 0.7), ("magnitude", 0.3), ("magnitude", 0.7)}
    assert set(result["max_sparsity"]["ratios"]) == {"0.weight", "2.weight", "4.weight"}
    assert (tmp_path / "gap_vs_sparsity.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["--net", "fcn:a,b"], "KIND:WIDTHS"),
    (["--net", "mlp:4,4"], "unknown network kind"),
    (["--model", "cnn"], "needs --data"),
    (["--net", "fcn:4,8,2", "--eps", "1", "--n-inputs", "10"], "at least"),
])
def test_gap_command_reports_user_mistakes_without_a_traceback(argv, message, capsys):
    args = _parse(argv + ["--sparsity", "0.5", "--score", "magnitude"])
    assert args.func(args) == 2
    assert message in capsys.readouterr().err
