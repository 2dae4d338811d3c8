"""bench/lm_training.py end to end on generated raw files: one lm.py protocol run per training length."""
from __future__ import annotations

from test_bench_lm import bench_script, tiny_lm_args


def test_lm_training_bench_runs_tiny(tmp_path, monkeypatch):
    study = bench_script(monkeypatch, "lm_training")
    args = study.parse(tiny_lm_args(tmp_path, "gpt", 16, "--steps-list", "2,3", "--eval-windows", "4", "--batch-size", "4"))
    res = study.run(args)
    rows = [b["summary"] for b in res["bases"]]
    assert [r["steps"] for r in rows] == [2, 3] and rows[0]["tokens"] == 2 * 4 * 16
    assert rows[0]["dense_test_ppl"] != rows[1]["dense_test_ppl"]  # two different bases, not one reused
    for r in rows:
        assert r["spread_max"] >= r["spread_median"] >= 1
        assert 0 <= r["wanda_row_agreement"] <= 1
        assert {"magnitude (layer)@0.5", "wanda@0.5", "sparsegpt@0.6"} <= set(r["increase"])
    text = study.markdown(res)
    assert text.startswith(study.START) and text.endswith(study.END)
    assert text.count("\n| 2 |") + text.count("\n| 3 |") == 2 and "wanda 50 %" in text
