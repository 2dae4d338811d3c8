"""The harness runs a language-model pair from YAML: a tiny GPT on generated WikiText-style raw files."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from prunekit.bench import Store, load, sweep

ROOT = Path(__file__).resolve().parents[1]


def write_corpus(root: Path, chars: int = 6000) -> Path:
    """Three raw files of a small seeded word-salad text (a learnable byte distribution)."""
    import random

    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "café", "\n"]
    for name in ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw"):
        text = " ".join(rng.choice(words) for _ in range(chars // 4))
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def lm_sweep(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("lm")
    config = {
        "name": "tiny-lm", "data_dir": str(write_corpus(root)), "datasets": ["wikitext"], "models": ["gpt-tiny"],
        "methods": [{"name": "mag", "scope": "layer", "target": "prunable_compression", "exclude": ["head"]},
                    {"name": "nm", "structure": "2:4", "exclude": ["head"]},
                    {"name": "wanda", "score": "wanda", "scope": "row", "target": "prunable_compression",
                     "exclude": ["head"], "score_batches": 2},
                    {"name": "sparsegpt", "score": "sparsegpt", "scope": "layer", "target": "prunable_compression",
                     "exclude": ["head"], "score_batches": 2}],
        "compressions": [2], "train": {"steps": 30, "batch_size": 16, "lr": 0.01, "optimizer": "adam"},
        "finetune": {"epochs": 0}, "measure": {"batch_sizes": [1, 4], "repeats": 2, "warmup": 0},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    outcome = sweep(load(path), root / "out")
    assert outcome.done == 4 and not outcome.failed
    with Store(root / "out") as store:
        return store.runs()


def test_lm_sweep_reports_perplexity_per_token(lm_sweep):
    for run in lm_sweep:
        m = run["metrics"]
        for split in ("test", "val"):
            assert m[f"finetuned_{split}_perplexity"] == pytest.approx(math.exp(m[f"finetuned_{split}_loss"]))
        assert m["dense_test_loss"] < math.log(256)  # the base learned something beyond uniform bytes
        assert m["finetuned_test_perplexity"] > math.exp(m["dense_test_loss"]) * 0.99


def test_prunable_compression_prunes_that_fraction_of_the_pruned_layers(lm_sweep):
    """Ratio 2 prunes half of the block weights (head dense), though the model's compression is lower."""
    by_method = {r["method"]: r["metrics"] for r in lm_sweep}
    for name in ("mag", "nm", "wanda", "sparsegpt"):
        m = by_method[name]
        assert 1 < m["achieved_compression"] < 2  # embeddings and head count, dense
        # gpt-tiny: 4 · 32² attention + 2 · 32 · 64 MLP weights, half pruned, over all Linears (+ the 256 · 32 head)
        block = 4 * 32 ** 2 + 2 * 32 * 64
        assert m["prunable_sparsity"] == pytest.approx(block / 2 / (block + 256 * 32))


def test_wiki_gpt_config_is_valid():
    config = load(ROOT / "configs" / "wiki-gpt.yaml")
    assert config.datasets == ["wiki-summaries"] and config.models == ["gpt"]
    assert all(m.target == "prunable_compression" or m.nominal_compression for m in config.methods)


def test_lm_bench_script_runs_tiny(tmp_path):
    """bench/lm.py end to end on generated raw files and gpt-tiny: every magnitude cell, errors at 50 %."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_lm", ROOT / "bench" / "lm.py")
    lm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lm)
    args = lm.parse(["--dataset", "wikitext", "--data-dir", str(write_corpus(tmp_path)), "--model", "gpt-tiny",
                     "--seq-len", "32", "--steps", "5", "--calib-windows", "4", "--eval-windows", "8",
                     "--cache", str(tmp_path / "cache")])
    res = lm.run(args)
    cells = {(r["method"], r["sparsity"]) for r in res["rows"]}
    assert {("magnitude (layer)", s) for s in lm.SPARSITIES} <= cells and ("magnitude 2:4", 0.5) in cells
    errors = res["recon_50"]["magnitude (layer)"]
    assert set(errors) == {f"blocks.0.{n}" for n in ("attn.q", "attn.k", "attn.v", "attn.out", "fc", "proj")}
    assert all(0 < e < 2 for e in errors.values())
    assert set(res["input_norm_spread"]) == set(errors) and min(res["input_norm_spread"].values()) >= 1
    agree = res["wanda_row_agreement"]  # Wanda's 50 % mask vs per-row magnitude's, per layer
    assert set(agree) == set(errors) and all(0 <= a <= 1 for a in agree.values())
    text = lm.markdown(res)
    assert "| magnitude (layer) |" in text and text.startswith(lm.START) and text.endswith(lm.END)
    assert lm.run(args)["base"] == res["base"]  # the second run reads the cached model
