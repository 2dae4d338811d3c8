"""The demo's terminal output fits 80 columns: one line per method, no wrapped or truncated rows, the
best method marked, seeds said in words, and the speedup line honest about dense forms and the floor."""
from __future__ import annotations

import random
import re

import pytest
from rich.console import Console

from prunekit.bench import DEMO_CONFIG, load, sweep
from prunekit.bench.terminal import print_summary


def _fake_base(spec, env):
    return {"state": b"", "metrics": {"test_top1": 0.97}, "epochs": []}


def _fake_run(spec, state, base, env):
    rnd = random.Random(hash((spec.method.name, spec.compression, spec.base.seed, spec.base.model)))
    acc = 0.97 - 0.004 * spec.compression * rnd.random()
    dense = spec.method.name != "layer-gradient"  # one method's runs were really timed
    speed = 1.0 if dense else 0.5 + rnd.random()
    return {"metrics": {"finetuned_test_top1": acc, "finetuned_val_top1": acc - 0.01 * rnd.random(),
                        "measured_speedup": speed, "speedup_by_construction": dense,
                        "noise_ratio": 1 + 0.04 * (rnd.random() - 0.5)}, "epochs": []}


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    config = load(DEMO_CONFIG)
    assert sweep(config, out, train_fn=_fake_base, run_fn=_fake_run).done == config.size()
    return out, config


@pytest.mark.parametrize("width", [80, 120])
def test_demo_summary_fits_the_terminal_without_wrapped_rows(demo_folder, width):
    out, config = demo_folder
    console = Console(width=width, record=True, highlight=False)
    print_summary(out, console)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    cells = re.compile(r"\d+\.\d±\d+\.\d\*? ?")
    for model in config.models:
        assert any(line.startswith(f"digits / {model}: test top-1 %, mean ± std over 2 seeds") for line in lines)
    for method in config.methods:
        rows = [line for line in lines if line.lstrip().startswith(method.name + " ")]
        assert len(rows) == len(config.models) * (1 if width >= 80 else 2), rows  # one line per table row
        for row in rows:
            assert len(cells.findall(row)) == len(config.compressions) and "…" not in row, row
    stars = sum(line.count("*") for line in lines if not line.startswith("*"))
    assert stars == len(config.models) * len(config.compressions)  # one best per compression, per model
    prose = " ".join(" ".join(lines).split())
    assert prose.count("40 of 50 runs deployed dense (speedup 1.00× by construction); noise floor ×1.0") == 2


def test_a_single_seed_says_so_instead_of_a_zero_spread(tmp_path):
    config = load(DEMO_CONFIG).model_copy(update={"seeds": [0], "models": ["mlp"]})
    sweep(config, tmp_path, train_fn=_fake_base, run_fn=_fake_run)
    console = Console(width=80, record=True)
    print_summary(tmp_path, console)
    text = console.export_text()
    assert "test top-1 %, 1 seed" in text and "±" not in text.split("1 seed")[1].split("runs deployed")[0]
