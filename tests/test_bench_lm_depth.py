"""bench/lm_depth.py end to end on generated raw files: blocks dropped by every score, compacted, fine-tuned."""
from __future__ import annotations

import importlib
from pathlib import Path

from test_bench_lm import write_corpus

ROOT = Path(__file__).resolve().parents[1]


def test_lm_depth_bench_runs_tiny(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    depth = importlib.import_module("lm_depth")
    args = depth.parse(["--dataset", "wikitext", "--data-dir", str(write_corpus(tmp_path)), "--model", "gpt",
                        "--seq-len", "16", "--steps", "3", "--calib-windows", "4", "--eval-windows", "4",
                        "--ft-steps", "2", "--batch-size", "4", "--random-seeds", "2", "--cache", str(tmp_path / "c")])
    res = depth.run(args)
    assert [(r["score"], r["seed"]) for r in res["rows"]] == [
        ("block-influence", 0), ("skip-loss", 0), ("branch-norm", 0), ("random", 0), ("random", 1)]
    for r in res["rows"]:
        assert len(r["removed"]) == 1 and r["blocks_left"] == 3  # 25 % of the zoo gpt's 4 blocks
        assert r["test_ppl"] > 1 and r["ft_test_ppl"] > 1
    text = depth.markdown(res)
    assert text.startswith(depth.START) and text.endswith(depth.END) and "| skip-loss |" in text and "| dense (reference) |" in text
