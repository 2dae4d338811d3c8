"""The harness and the CLI reach every structure and every registered score, each deployed in its real form."""
from __future__ import annotations

import re

import pytest
import torch

import prunekit as pk
from prunekit import choices, cli
from prunekit.bench import ConfigError, Store, parse, report, sweep

FAST = {"train": {"epochs": 1, "batch_size": 100, "lr": 0.05, "optimizer": "adam"},
        "finetune": {"epochs": 1, "batch_size": 100, "lr": 0.01, "optimizer": "adam"},
        "measure": {"batch_sizes": [1, 8], "repeats": 3, "warmup": 1}}


def config(methods, models=("vit-tiny",), compressions=(1.5,)) -> dict:
    return {"name": "structures", "datasets": ["synthetic"], "models": list(models), "methods": methods,
            "compressions": list(compressions), "seeds": [0], **FAST}


def test_sweep_over_every_structure_deploys_each_in_its_real_form(tmp_path):
    methods = [{"name": "channels-l1", "structure": "channels", "score": "l1", "round_to": 2},
               {"name": "heads-l2", "structure": "heads", "score": "l2"},
               {"name": "neurons", "structure": "neurons", "scope": "layer"},
               {"name": "nm-2:4", "structure": "2:4"},
               {"name": "weights", "structure": "weights", "exclude": ["embed"]}]
    cfg = parse(config(methods))
    assert [r.compression for r in cfg.runs()] == [1.5, 1.5, 1.5, 2.0, 1.5]  # 2:4 runs once, at M/N
    outcome = sweep(cfg, tmp_path)
    assert outcome.done == 5 and not outcome.failed, outcome.failed
    with Store(tmp_path) as store:
        runs = {r["method"]: r for r in store.runs()}
    for name, r in runs.items():
        m = r["metrics"]
        assert r["structure"] == cfg.methods[[x.name for x in cfg.methods].index(name)].structure
        assert r["deployed_as"] == m["deployed_as"] and 0 < m["finetuned_test_top1"] <= 1
    for name in ("channels-l1", "heads-l2"):  # compacted for real: fewer parameters, a smaller file
        m = runs[name]["metrics"]
        assert runs[name]["deployed_as"] == "compact" and m["deployed_params"] < m["params"]
        assert m["file_bytes"] < m["dense_file_bytes"] and m["achieved_compression"] >= 1.5
    m = runs["neurons"]["metrics"]
    assert (runs["neurons"]["deployed_as"], m["deployed_params"] < m["params"]) in {
        ("compact", True), ("dense (compact removed nothing)", False)}
    m = runs["nm-2:4"]["metrics"]
    assert runs["nm-2:4"]["deployed_as"] == "2:4 (no CPU kernel; dense)" and m["prunable_sparsity"] == 0.5
    m = runs["weights"]["metrics"]
    assert runs["weights"]["deployed_as"].startswith("sparse (") or \
        runs["weights"]["deployed_as"] == "dense (sparse kernels not faster)"
    assert abs(m["achieved_compression"] - 1.5) < 0.02
    text = report(tmp_path).read_text()
    assert re.search(r"\| heads-l2 \| [\d.]+ \| heads \| compact ×1 \|", text) and "2:4 (no CPU kernel; dense) ×1" in text


@pytest.mark.parametrize("method, message", [
    ({"name": "x", "structure": "chanels"}, "unknown structure 'chanels'; allowed values: "),
    ({"name": "x", "structure": "channels", "score": "nonexistent"}, "unknown score 'nonexistent' for structure 'channels'; allowed values: "),
    ({"name": "x", "scope": {"1": 1.5}}, "per-layer ratio 1.5 for '1' is outside [0, 1)"),
    ({"name": "x", "scope": "blockwise"}, "methods.0.scope: unknown scope 'blockwise'; allowed values: global"),
    ({"name": "x", "structure": "weights", "round_to": 8}, "round_to: applies to structures blocks+channels, channels, heads"),
    ({"name": "x", "structure": "2:4", "schedule": "iterative"}, "fixes its sparsity; allowed values: oneshot"),
    ({"name": "x", "target": "macs_reduction"}, "target: macs_reduction needs a traced structure"),
])
def test_methods_are_checked_against_the_registries(method, message):
    with pytest.raises(ConfigError) as err:
        parse(config([method]))
    assert message in str(err.value)
    if "structure 'chanels'" in message:  # the list is read from the registries, not written down
        assert all(n in str(err.value) for n in choices.structure_names())


def test_a_score_registered_here_reaches_prune_the_cli_and_the_harness(tmp_path, capsys):
    @pk.scores.register("my-test-score")
    class Squared(pk.scores.Score):
        """|w|² ranked with a data batch's mean input, so the harness and CLI must hand it data."""

        needs_data = True
        calls = 0

        def prepare(self, model, targets, data, loss_fn):
            if data is None:
                raise pk.MissingDataError("my-test-score needs data")
            type(self).calls += 1
            return None

        def __call__(self, weight, context):
            return weight.pow(2)

    try:
        torch.manual_seed(0)
        model = pk.models.create("mlp", input_size=8, hidden=(32,))
        with pytest.raises(pk.PruneError):
            pk.prune(model, 0.5, score="my-test-score")  # no data
        x = (torch.randn(16, 1, 8, 8), torch.randint(10, (16,)))
        pk.prune(model, 0.5, score="my-test-score", data=[x])
        assert pk.sparsity(model) == pytest.approx(0.5, abs=1e-3)

        weights, out = tmp_path / "w.pt", tmp_path / "p.pt"
        torch.save(pk.models.create("mlp", input_size=8).state_dict(), weights)
        base = ["prune", "mlp", "--input-shape", "1,8,8", "--weights", str(weights), "-o", str(out),
                "--sparsity", "0.5", "--score", "my-test-score"]
        assert cli.main(base) == 1 and "--score my-test-score scores with data: pass --data" in capsys.readouterr().err
        assert cli.main([*base, "--data", "digits"]) == 0 and out.exists()
        helptext = cli.build_parser()._subparsers._group_actions[0].choices["prune"].format_help()
        assert "my-test-score" in "".join(helptext.split())  # listed in --score's help (wrapped at hyphens)

        calls = Squared.calls
        cfg = parse(config([{"name": "mine", "score": "my-test-score"}], models=["mlp"], compressions=[2.0]))
        outcome = sweep(cfg, tmp_path / "bench")
        assert outcome.done == 1 and not outcome.failed and Squared.calls == calls + 1
    finally:
        pk.scores.registry._classes.pop("my-test-score")


def test_prunekit_prune_channels_with_l1_on_a_zoo_model_writes_a_smaller_model(tmp_path, capsys):
    weights, out = tmp_path / "cnn.pt", tmp_path / "cnn-channels"
    torch.save(pk.models.create("cnn").state_dict(), weights)
    argv = ["prune", "cnn", "--weights", str(weights), "-o", str(out), "--structure", "channels",
            "--score", "l1", "--compression", "2", "--round-to", "2"]
    assert cli.main(argv) == 0
    assert "(compact, " in capsys.readouterr().out and out.is_dir()  # written compacted: smaller dense layers
    model = pk.models.create("cnn")
    small = pk.load_compact(out, lambda: pk.models.create("cnn"))
    assert sum(p.numel() for p in small.parameters()) * 2 <= sum(p.numel() for p in model.parameters()) * 1.02
    assert all(c.out_channels % 2 == 0 for c in small.modules() if isinstance(c, torch.nn.Conv2d))


def test_cli_errors_speak_flags(tmp_path, capsys):
    weights = tmp_path / "cnn.pt"
    torch.save(pk.models.create("cnn").state_dict(), weights)
    base = ["prune", "cnn", "--weights", str(weights), "-o", str(tmp_path / "o.pt")]
    assert cli.main([*base, "--structure", "channels", "--sparsity", "0.5", "--max-ratio", "2"]) == 1
    err = capsys.readouterr().err
    assert "--max-ratio must be in (0, 1]" in err and not re.search(r"\b(sparsity|score|scope|structure|method)=", err), err
    assert cli.prune.flags("structure='channels' takes sparsity= or macs_reduction=, and score=/scope=; "
                           "got round_to=3") == ("--structure channels takes --sparsity or --macs-reduction, "
                                                 "and --score/--scope; got --round-to 3")
    assert cli.main([*base, "--structure", "heads", "--sparsity", "0.5"]) == 1
    assert "no prunable heads" in capsys.readouterr().err
    assert cli.main([*base, "--structure", "weights", "--sparsity", "0.5", "--round-to", "8"]) == 1
    assert "--round-to applies to --structure blocks+channels or channels or heads" in capsys.readouterr().err
    assert cli.main([*base, "--scope", "blockwise", "--sparsity", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "unknown --scope 'blockwise'; valid scopes: " in err and all(n in err for n in choices.scope_names())
    assert cli.main([*base, "--structure", "2:4", "--sparsity", "0.3", "--exclude", "features.0"]) == 1
    assert "--structure 2:4 fixes the sparsity at 0.5; omit --sparsity" in capsys.readouterr().err
    assert cli.main([*base, "--structure", "channels", "--score", "nonexistent", "--sparsity", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "unknown --score 'nonexistent' for --structure 'channels'; valid scores: " in err and "l1" in err


def test_a_structure_registered_here_reaches_prune_the_cli_and_the_harness(tmp_path, capsys):
    @pk.structures.register("my-test-pairs")
    class Pairs(pk.structures.TensorStructure):
        """Two neighbouring weights of a row as one unit (a 1×2 block)."""

        def check(self, module, pname):
            if getattr(module, pname).shape[-1] % 2:
                raise pk.UnsupportedLayerError("my-test-pairs needs rows of even length")

        def num_units(self, module, pname):
            return getattr(module, pname).numel() // 2

        def to_units(self, scores, module, reduce):
            return pk.structures.reduce_units(scores.reshape(-1, 2), reduce)

        def unit_mask(self, mask, module):
            return mask.reshape(-1, 2).any(1)

        def masks(self, keep, module, pname):
            weight = getattr(module, pname)
            return {pname: keep.repeat_interleave(2).view_as(weight).clone()}

    try:
        model = pk.models.create("mlp", input_size=8)
        pk.prune(model, 0.5, structure="my-test-pairs")
        w = model[1].weight.reshape(-1, 2)
        assert ((w == 0).all(1) | (w != 0).all(1)).all() and pk.sparsity(model) == pytest.approx(0.5, abs=1e-3)

        weights, out = tmp_path / "w.pt", tmp_path / "p.pt"
        torch.save(pk.models.create("mlp", input_size=8).state_dict(), weights)
        assert cli.main(["prune", "mlp", "--input-shape", "1,8,8", "--weights", str(weights), "-o", str(out),
                         "--structure", "my-test-pairs", "--compression", "2"]) == 0
        assert "my-test-pairs pruned" in capsys.readouterr().out and out.exists()

        cfg = parse(config([{"name": "pairs", "structure": "my-test-pairs"}], models=["mlp"], compressions=[2.0]))
        assert sweep(cfg, tmp_path / "bench").done == 1
        with Store(tmp_path / "bench") as store:
            (run,) = store.runs()
        m = run["metrics"]
        assert run["structure"] == "my-test-pairs" and abs(m["achieved_compression"] - 2) < 0.02
        assert (run["deployed_as"], m["deployed_params"] < m["params"]) in {
            ("compact", True), ("dense (compact removed nothing)", False)}
    finally:
        pk.structures.registry._classes.pop("my-test-pairs")


def test_a_store_of_the_previous_layout_gains_the_structure_and_deployed_as_columns(tmp_path):
    import sqlite3

    from prunekit.bench.store import DB_NAME, SCHEMA

    old = SCHEMA.replace(", structure TEXT, deployed_as TEXT", "")
    assert old != SCHEMA
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.executescript(old)
    conn.close()
    cfg = parse(config([{"name": "w"}], models=["mlp"]))
    with Store(tmp_path) as store:
        store.add(cfg.runs())
        (run,) = store.runs()
    assert run["structure"] == "weights" and run["deployed_as"] is None
