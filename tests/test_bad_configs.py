"""Class 5 of issue 17: configs with duplicate keys, bad text, non-finite or empty values, or a huge grid
are refused with one line naming the file and the key; the CLI exits 1 without a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import prunekit
from prunekit.bench import ConfigError, load, sweep
from prunekit.cli.main import main

GOOD = ("name: t\ndatasets: [synthetic]\nmodels: [mlp]\nmethods: [global-magnitude]\ncompressions: [2]\n")


def write(tmp_path: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def cli_error(capsys, *argv: str) -> str:
    """Run the CLI in-process; it must exit 1 with exactly one line on stderr."""
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("text, line", [
    (GOOD + "train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.5\n", "key 'lr' is given twice (lines 7 and 9)"),
    (GOOD + "seeds: [0]\nseeds: [1, 2]\n", "key 'seeds' is given twice (lines 6 and 7)"),
    ("name: a\n" + GOOD, "key 'name' is given twice (lines 1 and 2)"),
])
def test_duplicate_keys(tmp_path, text, line):
    with pytest.raises(ConfigError, match=line.replace("(", r"\(").replace(")", r"\)")) as info:
        load(write(tmp_path, text))
    assert "c.yaml" in str(info.value)


@pytest.mark.parametrize("raw", [b"name: t\xff\n", "name: caf\u00e9\n".encode("latin-1"), b"\xfe\xff\x00n"])
def test_non_utf8(tmp_path, raw):
    with pytest.raises(ConfigError, match=r"c.yaml is not UTF-8 text"):
        load(write(tmp_path, raw))


@pytest.mark.parametrize("extra, key", [
    ("train: {lr: .inf}", "train.lr: Input should be a finite number"),
    ("train: {lr: .nan}", "train.lr"),
    ("train: {lr: 0}", "train.lr: Input should be greater than 0"),
    ("finetune: {lr: -0.01}", "finetune.lr"),
    ("finetune: {weight_decay: .inf}", "finetune.weight_decay"),
    ("measure: {batch_sizes: []}", "measure.batch_sizes"),
    ("measure: {batch_sizes: [0, 8]}", "measure.batch_sizes.0"),
    ("measure: {batch_sizes: [-1]}", "measure.batch_sizes.0"),
    ("compressions: [.inf]", "compressions"),
])
def test_bad_numbers(tmp_path, extra, key):
    text = GOOD.replace("compressions: [2]\n", "") + ("" if extra.startswith("compressions") else "compressions: [2]\n")
    with pytest.raises(ConfigError, match=key.replace("(", r"\(")) as info:
        load(write(tmp_path, text + extra + "\n"))
    assert "c.yaml" in str(info.value)


@pytest.mark.parametrize("text, what", [("a: [\n", "is not valid YAML"), ("- 1\n- 2\n", "expected a mapping"),
                                        ("", "expected a mapping")])
def test_not_a_config(tmp_path, text, what):
    with pytest.raises(ConfigError, match=what):
        load(write(tmp_path, text))


def test_config_is_a_folder_or_missing(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "nope.yaml")


def test_huge_grid_states_its_size_and_needs_yes(tmp_path):
    cfg = yaml.safe_load(GOOD)
    cfg.update(compressions=[2 + i / 1000 for i in range(1000)], seeds=list(range(1000)))
    config = load(write(tmp_path, yaml.safe_dump(cfg)))
    assert config.size() == 1_000_000
    with pytest.raises(ConfigError, match="expands to 1,000,000 runs") as info:
        sweep(config, tmp_path / "out")
    assert "--yes" in str(info.value)
    assert not (tmp_path / "out").exists(), "nothing is created for a refused grid"


@pytest.mark.parametrize("text, what", [
    (GOOD + "train: {lr: 0.1}\ntrain: {lr: 0.2}\n", "given twice"),
    (b"name: t\xff\n", "not UTF-8"),
    (GOOD + "measure: {batch_sizes: []}\n", "measure.batch_sizes"),
    (GOOD + "train: {lr: .inf}\n", "train.lr"),
])
def test_cli_prints_one_line_and_exits_1(tmp_path, capsys, text, what):
    err = cli_error(capsys, "bench", str(write(tmp_path, text)), "--out", str(tmp_path / "out"), "--no-progress")
    assert what in err and "c.yaml" in err


def test_cli_in_a_real_process_has_no_traceback(tmp_path):
    path = write(tmp_path, GOOD + "seeds: [0]\nseeds: [0]\n")
    src = str(Path(prunekit.__file__).parents[1])
    proc = subprocess.run([sys.executable, "-m", "prunekit", "bench", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "given twice" in proc.stderr and "Traceback" not in proc.stderr
