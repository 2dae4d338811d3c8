"""The harness runs a language-model pair from YAML: a tiny GPT on generated WikiText-style raw files,
reported, plotted and ranked by perplexity (lower is better) where image pairs use top-1."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from rich.console import Console

from prunekit.bench import Store, load, report, sweep
from prunekit.bench import task_metric
from prunekit.bench.terminal import print_summary

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


def bench_script(monkeypatch, name: str):
    """bench/<name>.py imported as when the script runs: bench/ on sys.path, so its sibling modules import."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module(name)


def tiny_lm_args(tmp_path: Path, model: str, seq_len: int, *extra: str) -> list[str]:
    """The LM bench scripts' options for a seconds-long run on generated raw files in ``tmp_path``."""
    return ["--dataset", "wikitext", "--data-dir", str(write_corpus(tmp_path)), "--model", model, "--seq-len", str(seq_len),
            "--calib-windows", "4", "--cache", str(tmp_path / "cache"), *extra]


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory) -> Path:
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
    return root / "out"


@pytest.fixture(scope="module")
def lm_sweep(lm_folder) -> list[dict]:
    with Store(lm_folder) as store:
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


def test_lm_bench_script_runs_tiny(tmp_path, monkeypatch):
    """bench/lm.py end to end on generated raw files and gpt-tiny: every magnitude cell, errors at 50 %."""
    lm = bench_script(monkeypatch, "lm")
    args = lm.parse(tiny_lm_args(tmp_path, "gpt-tiny", 32, "--steps", "5", "--eval-windows", "8"))
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



def _best_row(text: str, ratio: str) -> list[str]:
    """The cells of a report's best-method table row at compression ``ratio``."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {ratio} | **"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_lm_sweep_is_reported_and_ranked_by_perplexity(lm_folder, lm_sweep):
    """Runs and bases record perplexity as the pair's metric; the report chooses the lowest validation
    perplexity, tables test perplexity and says that lower is better."""
    assert {r["metrics"][task_metric.RECORD] for r in lm_sweep} == {"perplexity"}
    val = {r["method"]: r["metrics"]["finetuned_val_perplexity"] for r in lm_sweep}
    text = report(lm_folder).read_text()
    assert "val perplexity (lower is better): best / next" in text and "| test perplexity |" in text
    assert "Dense test perplexity: " in text and "Numbers are test perplexity per token" in text
    cells = _best_row(text, "2")
    assert cells[1] == f"**{min(val, key=val.get)}**"
    assert cells[2] == " / ".join(f"{v:.2f}" for v in sorted(val.values())[:2])
    with Store(lm_folder) as store:
        dense = store.bases()[0]["metrics"]
    assert dense[task_metric.RECORD] == "perplexity"
    assert f"Dense test perplexity: {dense['test_perplexity']:.2f} (1 seed)." in text
    assert all((lm_folder / name).stat().st_size > 0 for name in ("accuracy_vs_compression.png", "runs.csv"))


FAKE_VAL = {"sharp": (0.60, 4.0), "calm": (0.50, 3.0)}  # method -> (val top-1, val perplexity): they disagree


def _fake_base(spec, env):
    return {"state": b"", "metrics": {"test_top1": 0.55, "test_perplexity": 2.5,
                                      task_metric.RECORD: "perplexity" if spec.dataset == "wikitext" else "top1"},
            "epochs": []}


def _fake_run(spec, state, base, env):
    top1, ppl = FAKE_VAL[spec.method.name]
    metrics = {"finetuned_val_top1": top1, "finetuned_test_top1": top1, "finetuned_val_perplexity": ppl,
               "finetuned_test_perplexity": ppl + 0.1, "achieved_compression": spec.compression,
               "theoretical_speedup": 1.0, "measured_speedup": 1.0, "speedup_by_construction": True,
               "noise_ratio": 1.0, "file_bytes": 1e3, "dense_file_bytes": 2e3, "macs": 100, "nonzero_macs": 50,
               "latency_b1_s": 1e-3, "dense_latency_b1_s": 1e-3, "measured_speedup_b1": 1.0, "deploy_form": "masked"}
    if spec.base.dataset == "wikitext":
        metrics[task_metric.RECORD] = "perplexity"
    return {"metrics": metrics, "epochs": []}


@pytest.mark.parametrize("dataset,best", [("wikitext", "calm"), ("digits", "sharp")])
def test_best_method_is_chosen_on_the_pairs_metric(tmp_path, dataset, best):
    """Where top-1 and perplexity disagree, a text pair picks the lower perplexity, an image pair
    (whose runs record no metric, as before) the higher top-1: in the report and the terminal."""
    config = {"name": "disagree", "data_dir": str(write_corpus(tmp_path)), "datasets": [dataset],
              "models": ["gpt-tiny" if dataset == "wikitext" else "mlp"],
              "methods": [{"name": "sharp"}, {"name": "calm"}], "compressions": [2], "seeds": [0]}
    path = tmp_path / "disagree.yaml"
    path.write_text(yaml.safe_dump(config))
    assert sweep(load(path), tmp_path / "out", train_fn=_fake_base, run_fn=_fake_run).done == 2
    text = report(tmp_path / "out").read_text()
    assert _best_row(text, "2")[1] == f"**{best}**"
    console = Console(width=100, record=True, highlight=False)
    print_summary(tmp_path / "out", console)
    lines = console.export_text().splitlines()
    starred = [line.split()[0] for line in lines if line.rstrip().endswith("*")]
    assert starred == [best]
    prose = " ".join(" ".join(lines).split())  # a narrow table wraps its title
    if dataset == "wikitext":
        assert "test perplexity (lower is better), 1 seed; dense 2.50" in prose
        assert "3.10*" in prose and "chosen on validation perplexity (never on test)" in prose
    else:
        assert "test top-1 %, 1 seed; dense 55.0" in prose
        assert "60.0*" in prose and "chosen on validation accuracy (never on test)" in prose


def test_the_data_decides_the_metric():
    from prunekit.data import digits
    from prunekit.data.text import windows

    text = windows(torch.arange(100) % 5, 8)
    assert task_metric.for_data(text) is task_metric.PERPLEXITY
    assert task_metric.for_data(digits()[1]) is task_metric.TOP1
    evaluated = {"top1": 0.5, "top5": 0.9, "loss": 1.0}
    assert task_metric.PERPLEXITY.compute(evaluated) == pytest.approx(math.e)
    assert task_metric.TOP1.compute(evaluated) == 0.5
    assert task_metric.PERPLEXITY.best_first([("a", 3.0), ("b", 2.0)])[0][0] == "b"
    assert task_metric.TOP1.best_first([("a", 0.3), ("b", 0.2)])[0][0] == "a"
