"""Class 6 of issue 17: the results folder and its store. One config per folder, one sweep at a time,
a damaged store or base checkpoint is named (or retrained), and no finished run is ever lost."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import prunekit
from prunekit.bench import ResumeError, Store, parse, report, sweep
from prunekit.bench.store import DB_NAME, locked
from prunekit.cli.main import main
from prunekit.errors import StoreError

CFG = {"name": "t", "datasets": ["synthetic"], "models": ["mlp"], "methods": ["global-magnitude", "random"],
       "compressions": [2.0, 4.0], "seeds": [0]}


def fake_base(spec, env):
    return {"state": b"weights" * 20, "metrics": {"test_top1": 0.5, "test_loss": 1.0}, "epochs": []}


def fake_run(spec, state, base, env):
    assert state == b"weights" * 20
    return {"metrics": {"finetuned_test_top1": spec.compression / 10, "finetuned_test_loss": 1.0},
            "epochs": [{"loss": 1.0}]}


def run(config, out, **kw):
    return sweep(config, out, train_fn=kw.pop("train_fn", fake_base), run_fn=kw.pop("run_fn", fake_run), **kw)


def finished(out: Path) -> dict[str, dict]:
    with Store(out) as store:
        return {r["id"]: r["metrics"] for r in store.runs("done")}


@pytest.fixture
def done(tmp_path):
    config = parse(CFG)
    assert run(config, tmp_path).done == 4
    return config, tmp_path


def test_edited_config_into_a_finished_folder_is_refused(done):
    config, out = done
    before = finished(out)
    edited = parse({**CFG, "finetune": {"epochs": 5, "lr": 0.01}})
    for resume in (False, True):
        with pytest.raises(StoreError, match="holds 4 runs of another config"):
            run(edited, out, resume=resume)
    assert finished(out) == before
    with pytest.raises(ResumeError, match="--resume"):
        run(config, out)
    assert run(config, out, resume=True).skipped == 4


def test_renaming_or_moving_data_is_the_same_config(done):
    config, out = done
    same = parse({**CFG, "name": "renamed", "data_dir": "/elsewhere"})
    assert run(same, out, resume=True).skipped == 4


def test_older_folder_without_a_config_id_is_checked_by_its_runs(done):
    config, out = done
    with sqlite3.connect(out / DB_NAME) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'config_id'")
    with pytest.raises(StoreError, match="another config"):
        run(parse({**CFG, "finetune": {"epochs": 1}}), out, resume=True)
    assert run(config, out, resume=True).skipped == 4


def test_every_result_setting_changes_the_run_identity():
    base = parse(CFG).runs()[0]
    for over in ({"finetune": {"epochs": 4}}, {"train": {"lr": 0.2}}, {"measure": {"repeats": 3}},
                 {"val_fraction": 0.2}, {"measure": {"deploy": "dense"}}):
        assert parse({**CFG, **over}).runs()[0].id != base.id, over


def test_out_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a results folder"):
        run(parse(CFG), tmp_path / "f")


@pytest.mark.parametrize("damage", ["folder", "garbage", "malformed", "empty-tables-other-app"])
def test_damaged_runs_db(tmp_path, damage):
    db = tmp_path / DB_NAME
    if damage == "folder":
        db.mkdir()
    elif damage == "garbage":
        db.write_bytes(b"this is not sqlite" * 100)
    elif damage == "malformed":
        run(parse(CFG), tmp_path)
        raw = bytearray(db.read_bytes())
        raw[4096:] = os.urandom(len(raw) - 4096)  # scribble over every page but the first
        db.write_bytes(bytes(raw))
        for side in ("-wal", "-shm"):
            Path(str(db) + side).unlink(missing_ok=True)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE runs (x)")  # another program's table of the same name
    with pytest.raises(StoreError) as info:
        run(parse(CFG), tmp_path, resume=True)
    assert DB_NAME in str(info.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_out(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(StoreError, match="read-only|cannot"):
            run(parse(CFG), tmp_path / "sub")
    finally:
        os.chmod(tmp_path, 0o700)


def test_truncated_base_checkpoint_is_retrained(tmp_path):
    config = parse(CFG)
    calls = []

    def failing_once(spec, state, base, env):
        if not calls:
            calls.append(1)
            raise RuntimeError("crash")
        return fake_run(spec, state, base, env)

    outcome = run(config, tmp_path, run_fn=failing_once)
    assert outcome.done == 3 and len(outcome.failed) == 1
    (path,) = (tmp_path / "bases").glob("*.pt")
    path.write_bytes(path.read_bytes()[:30])  # what a crash mid-write on a non-atomic filesystem leaves
    trained = []
    outcome = run(config, tmp_path, resume=True, train_fn=lambda *a: trained.append(1) or fake_base(*a))
    assert trained == [1] and outcome.done == 1 and outcome.skipped == 3 and not outcome.failed
    assert path.read_bytes() == b"weights" * 20


def test_diverged_base_is_failed_not_done(tmp_path):
    nan_base = lambda spec, env: {**fake_base(spec, env), "metrics": {"test_top1": 0.1, "test_loss": float("nan")}}
    outcome = run(parse(CFG), tmp_path, train_fn=nan_base)
    assert outcome.done == 0 and len(outcome.failed) == 4
    with Store(tmp_path) as store:
        (base,) = store.bases()
    assert base["status"] == "failed" and "diverged" in base["error"] and "test_loss" in base["error"]


def test_a_second_sweep_on_a_locked_folder_is_refused(done):
    config, out = done
    with locked(out):
        with pytest.raises(StoreError, match=rf"another sweep \(pid {os.getpid()}\) is running"):
            run(config, out, resume=True)
    assert run(config, out, resume=True).skipped == 4


def test_report_of_a_folder_without_a_store(tmp_path, capsys):
    with pytest.raises(prunekit.PruneError, match=f"holds no {DB_NAME}"):
        report(tmp_path)
    assert not (tmp_path / DB_NAME).exists()
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and DB_NAME in err


@pytest.mark.parametrize("damage", ["out-is-file", "db-is-garbage", "edited-config"])
def test_cli_store_errors_are_one_line(tmp_path, capsys, damage):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**CFG, "train": {"epochs": 0}, "finetune": {"epochs": 0}}))
    out = tmp_path / "out"
    if damage == "out-is-file":
        out.write_text("x")
    elif damage == "db-is-garbage":
        out.mkdir()
        (out / DB_NAME).write_bytes(b"garbage" * 100)
    else:
        run(parse(CFG), out)
    assert main(["bench", str(cfg), "--out", str(out), "--no-progress", "--resume"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and str(out) in err


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(prunekit.__file__).parents[1])}


def test_two_concurrent_resumes_do_each_run_once(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        **CFG, "seeds": [0, 1], "train": {"epochs": 1, "batch_size": 100, "lr": 0.05},
        "finetune": {"epochs": 1, "batch_size": 100, "lr": 0.01},
        "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0}}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "prunekit", "bench", str(cfg), "--out", str(out), "--resume", "--no-progress"]
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for code, err in results:
        assert "Traceback" not in err
        assert code == 0 or (code == 1 and "another sweep" in err and len(err.strip().splitlines()) == 1), err
    assert any(code == 0 for code, _ in results)
    with sqlite3.connect(out / DB_NAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT status, attempts FROM runs").fetchall()
        assert sorted(rows) == [("done", 1)] * 8
        assert conn.execute("SELECT COUNT(*) FROM bases WHERE status = 'done'").fetchone()[0] == 2


# -- kill -9 in each phase (base training, runs, report), repeated, then resume --------------------------------
EXACT = ("finetuned_test_top1", "finetuned_val_loss", "pruned_test_top1", "dense_test_top1", "nonzero_params")
REAL = {**CFG, "seeds": [0, 1], "compressions": [2.0], "train": {"epochs": 2, "batch_size": 100, "lr": 0.05},
        "finetune": {"epochs": 1, "batch_size": 100, "lr": 0.01},
        "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0}}


def _count(db: Path, query: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(query).fetchone()[0]
    except sqlite3.Error:  # tables not created yet
        return 0


def _kill_when(cmd: list[str], ready) -> int | None:
    """Start the CLI, SIGKILL it once ``ready()`` holds; the exit code if it finished first."""
    import signal
    import time

    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def test_kill_in_every_phase_then_resume(tmp_path):
    import hashlib

    cfg, out = tmp_path / "c.yaml", tmp_path / "out"
    cfg.write_text(yaml.safe_dump(REAL))
    db = out / DB_NAME
    cmd = [sys.executable, "-m", "prunekit", "bench", str(cfg), "--out", str(out), "--resume", "--no-progress"]
    bases_done = "SELECT COUNT(*) FROM bases WHERE status = 'done'"
    runs_done = "SELECT COUNT(*) FROM runs WHERE status = 'done'"
    assert _kill_when(cmd, lambda: _count(db, "SELECT COUNT(*) FROM bases") > 0) == -9  # training a base
    assert _count(db, bases_done) < 2
    assert _kill_when(cmd, lambda: _count(db, runs_done) >= 1) == -9  # between runs
    assert _count(db, runs_done) < 4
    _kill_when(cmd, lambda: _count(db, runs_done) == 4)  # while the report is written (if it is not done yet)
    assert main(["bench", str(cfg), "--out", str(out), "--resume", "--no-progress"]) == 0

    reference = tmp_path / "ref"
    assert sweep(parse(REAL), reference).done == 4
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs WHERE status = 'done'").fetchone() == (4, 4)
        assert conn.execute("SELECT COUNT(*) FROM epochs WHERE phase = 'finetune'").fetchone()[0] == 4
    with Store(out) as store, Store(reference) as ref:
        got = {r["id"]: {k: r["metrics"][k] for k in EXACT} for r in store.runs()}
        want = {r["id"]: {k: r["metrics"][k] for k in EXACT} for r in ref.runs()}
        assert got == want
        for b in store.bases():  # every saved base is whole and matches its recorded digest
            state = (out / "bases" / f"{b['id']}.pt").read_bytes()
            assert hashlib.sha256(state).hexdigest() == store.meta(f"base_sha256:{b['id']}")
            assert state == (reference / "bases" / f"{b['id']}.pt").read_bytes()
    report_md = (out / "report.md").read_text()
    assert "Runs: 4 done." in report_md and "over 2 seeds" in report_md
