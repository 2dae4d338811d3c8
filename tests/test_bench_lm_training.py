"""bench/lm_training.py end to end on generated raw files: one lm.py protocol run per base recipe."""
from __future__ import annotations

import pytest

from test_bench_lm import bench_script, tiny_lm_args


def test_lm_training_bench_runs_tiny(tmp_path, monkeypatch):
    study = bench_script(monkeypatch, "lm_training")
    args = study.parse(tiny_lm_args(tmp_path, "gpt", 16, "--bases", "2,3,2:no-norm-decay", "--eval-windows", "4",
                                    "--batch-size", "4"))
    res = study.run(args)
    rows = [b["summary"] for b in res["bases"]]
    assert [(r["steps"], r["decay_norms_and_biases"]) for r in rows] == [(2, True), (3, True), (2, False)]
    assert rows[0]["tokens"] == 2 * 4 * 16
    assert len({r["dense_test_ppl"] for r in rows}) == 3  # three different bases, none reused
    for r in rows:
        assert r["spread_max"] >= r["spread_median"] >= 1 and r["ln_gain_spread"] >= 1
        assert 0 <= r["wanda_row_agreement"] <= 1
        assert {"magnitude (layer)@0.5", "wanda@0.5", "sparsegpt@0.6"} <= set(r["increase"])
    text = study.markdown(res)
    assert text.startswith(study.START) and text.endswith(study.END)
    assert "| 2 steps, norms and biases not decayed | 60 % |" in text and text.count("\n| 3 steps |") == 3
    args.bases = "3,4"  # --add: the 2-step bases are kept, the 3-step one redone in place of the old
    more = study.run(args, res["bases"])
    assert [(b["summary"]["steps"], b["summary"]["decay_norms_and_biases"]) for b in more["bases"]] == [
        (2, True), (2, False), (3, True), (4, True)]
    assert more["bases"][2]["summary"] == rows[1]  # a cached base measures the same again


def test_lm_training_bases_parse_and_refuse_typos(monkeypatch):
    study = bench_script(monkeypatch, "lm_training")
    assert study.bases("1000, 4000,1000:no-norm-decay") == [(1000, True), (4000, True), (1000, False)]
    with pytest.raises(SystemExit, match="STEPS:no-norm-decay"):
        study.bases("1000:no-decay")
