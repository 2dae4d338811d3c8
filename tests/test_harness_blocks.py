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
        deployed = [(r["method"], r["deployed_as"], r["metrics"]) for r in store.runs()]
    assert sorted(name for name, _, _ in deployed) == sorted(m["name"] for m in methods)
    for name, how, m in deployed:  # compacted for real, about 1.5x fewer MACs (nonzero MACs of the masked model)
        assert how == "compact" and m["deployed_params"] < m["params"] and m["theoretical_speedup"] >= 1.45, name
