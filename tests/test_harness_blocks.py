"""Depth pruning in the harness: blocks and blocks+channels are structures like the others in a sweep."""
from __future__ import annotations

from prunekit.bench import Store, parse, sweep

FAST = {"train": {"steps": 10, "batch_size": 64, "lr": 0.05, "optimizer": "adam"},
        "finetune": {"steps": 5, "batch_size": 64, "lr": 0.01, "optimizer": "adam"},
        "measure": {"batch_sizes": [1], "repeats": 2, "warmup": 1}}


def test_sweep_prunes_resnet_blocks_and_width_plus_depth_to_a_macs_target(tmp_path):
    methods = [{"name": "blocks-bi", "structure": "blocks", "score": "block-influence", "target": "macs_reduction"},
               {"name": "blocks-random", "structure": "blocks", "score": "random", "target": "macs_reduction"},
               {"name": "width+depth", "structure": "blocks+channels", "score": "l1", "target": "macs_reduction"}]
    cfg = parse({"name": "depth", "datasets": ["synthetic"], "models": ["resnet20"], "methods": methods,
                 "compressions": [1.5], "seeds": [0], **FAST})
    outcome = sweep(cfg, tmp_path)
    assert outcome.done == 3 and not outcome.failed, outcome.failed
    with Store(tmp_path) as store:
        runs = {r["method"]: r for r in store.runs()}
    for name, r in runs.items():
        m = r["metrics"]
        assert r["deployed_as"] == "compact" and m["deployed_params"] < m["params"], name
        assert 0 <= m["finetuned_test_top1"] <= 1
