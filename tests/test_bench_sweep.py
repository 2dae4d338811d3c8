"""Sweeps end to end on small synthetic data: store, resume after a real kill, Ray = local, reports."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import prunekit
import prunekit as pk
from prunekit.bench import ResumeError, Store, load, report, sweep
from prunekit.bench.store import DB_NAME

METHODS = ["global-magnitude", "layer-magnitude", "global-gradient", "layer-gradient", "random"]
RATIOS = [2.0, 8.0]
TINY = {
    "name": "tiny", "datasets": ["synthetic"], "models": ["mlp"], "methods": METHODS, "compressions": RATIOS,
    "seeds": [0, 1], "train": {"epochs": 2, "batch_size": 100, "lr": 0.05},
    "finetune": {"epochs": 2, "batch_size": 100, "lr": 0.01},
    "measure": {"batch_sizes": [1, 8], "repeats": 3, "warmup": 1},
}
N_RUNS = len(METHODS) * len(RATIOS) * 2
# Deterministic for a seed (thread count fixed to 1), so they must agree across executors and resumes.
EXACT = ("finetuned_test_top1", "finetuned_val_loss", "pruned_test_top1", "dense_test_top1", "nonzero_params",
         "nonzero_macs", "best_epoch")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config_path) -> tuple[Path, dict]:
    """One uninterrupted sequential sweep: run id → metrics."""
    out = tmp_path_factory.mktemp("ref")
    outcome = sweep(load(config_path), out)
    assert outcome.done == N_RUNS and not outcome.failed
    with Store(out) as store:
        return out, {r["id"]: r["metrics"] for r in store.runs()}


def exact(metrics: dict) -> dict:
    return {k: {m: v[m] for m in EXACT} for k, v in metrics.items()}


def test_sweep_records_every_metric(reference):
    out, runs = reference
    assert len(runs) == N_RUNS
    m = next(iter(runs.values()))
    for key in ("dense_test_top1", "pruned_val_top5", "finetuned_test_loss", "achieved_compression", "sparsity",
                "macs", "nonzero_macs", "theoretical_speedup", "latency_b1_s", "latency_b8_s",
                "measured_speedup_b8", "file_bytes", "file_format", "deploy_form_b1", "deploy_form", "wall_s", "cpu_s", "torch_version",
                "machine"):
        assert key in m, key
    by_ratio = {}
    with Store(out) as store:
        for r in store.runs():
            by_ratio.setdefault(r["compression"], []).append(r["metrics"]["achieved_compression"])
            assert len(store.epochs(r["id"], "finetune")) == 2
        assert len(store.bases()) == 2 and all(b["status"] == "done" for b in store.bases())
    for target, achieved in by_ratio.items():
        assert all(abs(a - target) / target < 0.01 for a in achieved)


def test_rerun_needs_resume_and_resume_skips_finished(reference, config_path):
    out, runs = reference
    with pytest.raises(ResumeError, match="--resume"):
        sweep(load(config_path), out)
    calls = []
    outcome = sweep(load(config_path), out, resume=True, run_fn=lambda *a: calls.append(a))
    assert outcome.skipped == N_RUNS and outcome.done == 0 and calls == []


def test_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path, config_path):
    cfg = load(config_path).model_copy(update={"compressions": [2.0, 1e6]})
    outcome = sweep(cfg, tmp_path, train_fn=_fake_base, run_fn=_fake_run)
    half = N_RUNS // 2
    assert outcome.done == half and len(outcome.failed) == half
    assert all("unreachable" in reason for _, reason in outcome.failed)
    with Store(tmp_path) as store:
        assert store.counts() == {"done": half, "failed": half}


def _fake_base(spec, env):
    return {"state": b"", "metrics": {"test_top1": 0.5}, "epochs": []}


def _fake_run(spec, state, base, env):
    if spec.compression > 100:
        raise prunekit.InvalidSparsityError("compression is unreachable")
    return {"metrics": {"x": 1}, "epochs": [{"loss": 1.0}]}


def _env() -> dict:
    src = str(Path(prunekit.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _done(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=5) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def test_kill_mid_sweep_then_resume(tmp_path, config_path, reference):
    proc = subprocess.Popen([sys.executable, "-m", "prunekit", "bench", str(config_path), "--out", str(tmp_path),
                             "--no-progress"], env=_env())
    deadline = time.time() + 120
    while _done(tmp_path / DB_NAME) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _done(tmp_path / DB_NAME)
    assert 3 <= killed_at < N_RUNS, "the kill must land mid-sweep"

    outcome = sweep(load(config_path), tmp_path, resume=True)
    assert outcome.skipped == killed_at and outcome.done == N_RUNS - killed_at and not outcome.failed
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs").fetchone() == (N_RUNS, N_RUNS)
    assert conn.execute("SELECT COUNT(*) FROM epochs WHERE phase = 'finetune'").fetchone()[0] == 2 * N_RUNS
    conn.close()
    with Store(tmp_path) as store:
        resumed = {r["id"]: r["metrics"] for r in store.runs()}
    assert exact(resumed) == exact(reference[1])


def test_ray_gives_the_same_results_as_local(tmp_path, config_path, reference):
    pytest.importorskip("ray")
    from prunekit.bench import Ray

    executor = Ray(num_cpus=2)
    try:
        outcome = sweep(load(config_path), tmp_path, executor=executor)
    finally:
        executor.close()
    assert outcome.done == N_RUNS and not outcome.failed
    with Store(tmp_path) as store:
        assert exact({r["id"]: r["metrics"] for r in store.runs()}) == exact(reference[1])


def test_report_has_every_method_and_ratio(reference):
    out, runs = reference
    path = report(out)
    text = path.read_text()
    for name in ("accuracy_vs_compression.png", "accuracy_vs_theoretical_speedup.png",
                 "accuracy_vs_measured_speedup.png", "runs.csv"):
        assert (out / name).stat().st_size > 1000 or name == "runs.csv"
        assert name in text
    table = text.split("## synthetic / mlp")[1]
    for method in METHODS:
        assert method in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [float(r.split("|")[1]) for r in rows] == RATIOS
    csv_lines = (out / "runs.csv").read_text().splitlines()
    assert len(csv_lines) == N_RUNS + 1 and "finetuned_test_top1" in csv_lines[0]
    assert {line.split(",")[3] for line in csv_lines[1:]} == set(METHODS)


def test_report_on_an_empty_directory_says_what_to_do(tmp_path):
    with pytest.raises(prunekit.PruneError, match="prunekit bench"):
        report(tmp_path)


def test_iterative_schedule_prunes_in_rounds_with_fine_tuning_between(tmp_path, config_path):
    method = {"name": "iterative-magnitude", "schedule": "iterative", "rounds": 3}
    cfg = load(config_path).model_copy(update={"seeds": [0], "compressions": [8.0]})
    cfg = type(cfg).model_validate({**cfg.model_dump(), "methods": [method]})
    assert sweep(cfg, tmp_path).done == 1
    with Store(tmp_path) as store:
        (run,) = store.runs()
        assert len(store.epochs(run["id"], "finetune")) == 3 * 2  # 3 rounds × 2 fine-tuning epochs
    assert abs(run["metrics"]["achieved_compression"] - 8) < 0.05


def test_worker_processes_give_the_same_results_as_sequential(tmp_path, config_path, reference):
    from prunekit.bench import make

    cfg = load(config_path).model_copy(update={"seeds": [1], "compressions": [8.0]})  # a slice keeps it quick
    executor = make("local", workers=2)
    try:
        assert sweep(cfg, tmp_path, executor=executor).done == len(METHODS)
    finally:
        executor.close()
    with Store(tmp_path) as store:
        got = exact({r["id"]: r["metrics"] for r in store.runs()})
    assert got == {k: v for k, v in exact(reference[1]).items() if k in got}


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_killed_driver_takes_its_worker_processes_with_it(tmp_path, config_path):
    proc = subprocess.Popen([sys.executable, "-m", "prunekit", "bench", str(config_path), "--out", str(tmp_path),
                             "--no-progress", "--workers", "2"], env=_env())
    deadline = time.time() + 120
    while _done(tmp_path / DB_NAME) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert workers, "the sweep should have started worker processes"
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def test_pretrained_weights_replace_base_training(tmp_path, config_path):
    from prunekit.bench.runner import Env, train_base

    cfg = load(config_path)
    model = prunekit.models.create("mlp", in_channels=1, input_size=8)
    weights = tmp_path / "mlp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, weights)
    cfg = type(cfg).model_validate({**cfg.model_dump(), "weights": {"mlp": str(weights)}})
    base = cfg.bases()[0]
    out = train_base(base, Env())
    assert out["epochs"] == []  # loaded, not trained
    _, _, test = prunekit.data.load("synthetic")
    assert out["metrics"]["test_top1"] == prunekit.evaluate(model, test)["top1"]
    assert base.id != load(config_path).bases()[0].id  # the weights are part of the base's identity


def test_neuron_pruning_is_labelled_by_what_compaction_achieved(tmp_path, config_path):
    method = {"name": "neuron-magnitude", "structure": "neurons", "scope": "layer"}
    cfg = load(config_path).model_copy(update={"seeds": [0], "compressions": [2.0]})
    cfg = type(cfg).model_validate({**cfg.model_dump(), "methods": [method]})
    assert sweep(cfg, tmp_path).done == 1
    with Store(tmp_path) as store:
        (run,) = store.runs()
    m = run["metrics"]
    assert run["deployed_as"] == m["deployed_as"] == m["deploy_form"]
    if m["deployed_as"] == "compact":  # pk.compact really shrank the neuron-pruned model
        assert m["deployed_params"] < m["params"] and m["file_bytes"] < m["dense_file_bytes"] / 1.5
    else:  # it did not: the label says so instead of claiming a compaction
        assert m["deployed_as"] == "dense (compact removed nothing)" and m["deployed_params"] == m["params"]


def test_gradual_and_rewinding_methods_run_end_to_end(tmp_path, config_path):
    from prunekit.bench.runner import unpack_base
    from prunekit.bench.zoo import create_model, load_data

    gradual = {"name": "gradual", "schedule": "gradual", "gradual": {"start": 0, "every": 3, "n": 3}}
    rewind = {"name": "rewind-3", "finetune": {"variant": "rewind", "rewind_step": 3}}
    ticket = {"name": "ticket", "finetune": {"variant": "rewind"}}
    too_late = {"name": "too-late", "finetune": {"variant": "rewind", "rewind_step": 100}}  # T is 18 steps
    cfg = load(config_path).model_copy(update={"seeds": [0], "compressions": [8.0]})
    cfg = type(cfg).model_validate({**cfg.model_dump(), "methods": [gradual, rewind, ticket, too_late]})
    outcome = sweep(cfg, tmp_path)
    assert outcome.done == 3 and len(outcome.failed) == 1 and "smaller finetune.rewind_step" in outcome.failed[0][1]
    with Store(tmp_path) as store:
        runs = {r["method"]: r for r in store.runs("done")}
        logs = {name: store.epochs(r["id"], "finetune") for name, r in runs.items()}
    for r in runs.values():
        m = r["metrics"]
        assert abs(m["achieved_compression"] - 8) < 0.05 and 0 < m["finetuned_test_top1"] <= 1
        assert m["pruned_val_top1"] >= 0 and m["measured_speedup"] > 0
    # Rewinding to step 3 and to the seeded init (k = 0) retrain from different weights.
    assert runs["rewind-3"]["metrics"]["finetuned_val_loss"] != runs["ticket"]["metrics"]["finetuned_val_loss"]
    # Gradual prunes at steps 0, 3, 6, 9 inside the same 2-epoch (18-step) fine-tuning budget as one-shot.
    assert len(logs["gradual"]) == 2 and logs["gradual"][-1]["step"] == 18
    assert len(logs["rewind-3"]) == 2 and logs["rewind-3"][-1]["step"] == 18 - 3  # replays T = 18 from k = 3
    # The base kept the weights of step 3, which equal 3 steps of the same training run by hand.
    base = cfg.bases()[0]
    _, rewinds = unpack_base((tmp_path / "bases" / f"{base.id}.pt").read_bytes())
    assert base.rewind_steps == (3, 100) and set(rewinds) == {3}
    train, val, _ = load_data("synthetic", None, base.val_fraction)
    model = create_model("mlp", train, 0)
    prunekit.train(model, train, val, steps=3, seed=0, progress=False, schedule_total=18,
                   **base.train.model_dump(exclude={"epochs", "steps"}))
    assert all(torch.equal(v, rewinds[3][k]) for k, v in model.state_dict().items())


def test_deployed_size_counts_the_values_of_sparse_weights():
    from prunekit.bench.runner import stored_values

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    pk.prune(model, sparsity=0.9)
    dense = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    assert stored_values(model) == dense
    fast = pk.sparsify(model, torch.randn(1, 64), policy="sparse")
    assert nonzero <= stored_values(fast) < dense  # the CSR values count; they are buffers, not parameters
