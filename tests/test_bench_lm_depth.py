"""bench/lm_depth.py end to end on generated raw files: blocks dropped by every score, compacted, fine-tuned."""
from __future__ import annotations

from test_bench_lm import bench_script, tiny_lm_args


def test_lm_depth_bench_runs_tiny(tmp_path, monkeypatch):
    depth = bench_script(monkeypatch, "lm_depth")
    args = depth.parse(tiny_lm_args(tmp_path, "gpt", 16, "--steps", "3", "--eval-windows", "4", "--ft-steps", "2",
                                    "--batch-size", "4", "--random-seeds", "2"))
    res = depth.run(args)
    assert [(r["score"], r["seed"]) for r in res["rows"]] == [
        ("block-influence", 0), ("skip-loss", 0), ("branch-norm", 0), ("random", 0), ("random", 1)]
    for r in res["rows"]:
        assert len(r["removed"]) == 1 and r["blocks_left"] == 3  # 25 % of the zoo gpt's 4 blocks
        assert r["test_ppl"] > 1 and r["ft_test_ppl"] > 1
    text = depth.markdown(res)
    assert text.startswith(depth.START) and text.endswith(depth.END) and "| skip-loss |" in text and "| dense (reference) |" in text
