"""One SQLite database per benchmark directory: runs, base models, metrics and per-epoch logs.

Only the process driving a sweep writes. Every state change is one transaction, so a kill at any
moment loses at most the runs in progress: a run is either absent, ``pending``/``running`` (redone on
resume), or ``done`` with all of its metrics and epoch rows. Identities are primary keys, so a run
can never appear twice.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from .config import BaseSpec, RunSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bases (
  id TEXT PRIMARY KEY, dataset TEXT NOT NULL, model TEXT NOT NULL, seed INTEGER NOT NULL,
  settings TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', metrics TEXT, error TEXT,
  finished REAL);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, base_id TEXT NOT NULL, dataset TEXT NOT NULL, model TEXT NOT NULL,
  method TEXT NOT NULL, compression REAL NOT NULL, seed INTEGER NOT NULL, settings TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending', metrics TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
  started REAL, finished REAL, structure TEXT, deployed_as TEXT);
CREATE TABLE IF NOT EXISTS epochs (
  owner TEXT NOT NULL, phase TEXT NOT NULL, epoch INTEGER NOT NULL, metrics TEXT NOT NULL,
  PRIMARY KEY (owner, phase, epoch));
"""

DB_NAME = "runs.db"


class Store:
    """The results database of one benchmark directory (created on first use)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        with self._tx():
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            have = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
            for column in ("structure", "deployed_as"):  # stores written before these columns existed
                if column not in have:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")

    def _tx(self) -> "_Transaction":
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ---------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add_session(self, info: dict[str, Any]) -> None:
        """Record one finished sweep invocation (executor, counts, wall time)."""
        self.set_meta(f"session:{time.time():.6f}", json.dumps(info))

    def sessions(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT value FROM meta WHERE key LIKE 'session:%' ORDER BY key").fetchall()
        return [json.loads(r[0]) for r in rows]

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # -- registering work ------------------------------------------------------------------------
    def add(self, runs: Iterable[RunSpec]) -> None:
        """Register runs and their bases; ones already present (any status) are left untouched."""
        with self._tx():
            for r in runs:
                b = r.base
                self.conn.execute(
                    "INSERT OR IGNORE INTO bases (id, dataset, model, seed, settings) VALUES (?,?,?,?,?)",
                    (b.id, b.dataset, b.model, b.seed, b.model_dump_json()),
                )
                self.conn.execute(
                    "INSERT OR IGNORE INTO runs (id, base_id, dataset, model, method, compression, seed, "
                    "settings, structure) VALUES (?,?,?,?,?,?,?,?,?)",
                    (r.id, b.id, b.dataset, b.model, r.method.name, r.compression, b.seed, r.model_dump_json(),
                     r.method.structure),
                )

    def requeue_interrupted(self) -> int:
        """Put runs left ``running`` by a killed process back to ``pending``; returns how many."""
        with self._tx():
            return self.conn.execute("UPDATE runs SET status = 'pending' WHERE status = 'running'").rowcount

    def status(self, run_ids: Iterable[str]) -> dict[str, str]:
        """Run id → status for the given ids that are registered."""
        ids = list(run_ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT id, status FROM runs WHERE id IN ({','.join('?' * len(chunk))})"
            out.update({row[0]: row[1] for row in self.conn.execute(q, chunk)})
        return out

    def base_metrics(self, base_id: str) -> dict[str, Any] | None:
        """The metrics of a finished base model, or None when it is not finished."""
        row = self.conn.execute("SELECT status, metrics FROM bases WHERE id = ?", (base_id,)).fetchone()
        return json.loads(row["metrics"]) if row is not None and row["status"] == "done" else None

    # -- recording results ---------------------------------------------------------------------
    def start(self, run_id: str) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, started = ? WHERE id = ?",
                (time.time(), run_id),
            )

    def finish_base(self, base: BaseSpec, metrics: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
        with self._tx():
            self._epochs(base.id, "train", epochs)
            self.conn.execute(
                "UPDATE bases SET status = 'done', metrics = ?, error = NULL, finished = ? WHERE id = ?",
                (json.dumps(metrics), time.time(), base.id),
            )

    def fail_base(self, base_id: str, error: str) -> None:
        with self._tx():
            self.conn.execute("UPDATE bases SET status = 'failed', error = ? WHERE id = ?", (error, base_id))
            self.conn.execute(
                "UPDATE runs SET status = 'failed', error = ? WHERE base_id = ? AND status != 'done'",
                (f"base model failed: {error}", base_id),
            )

    def finish(self, run_id: str, metrics: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
        """Record a finished run, its metrics (``deployed_as`` also as a column) and its fine-tuning log,
        all in one transaction."""
        with self._tx():
            self._epochs(run_id, "finetune", epochs)
            self.conn.execute(
                "UPDATE runs SET status = 'done', metrics = ?, error = NULL, finished = ?, deployed_as = ? WHERE id = ?",
                (json.dumps(metrics), time.time(), metrics.get("deployed_as"), run_id),
            )

    def fail(self, run_id: str, error: str) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ? WHERE id = ?",
                (error, time.time(), run_id),
            )

    def _epochs(self, owner: str, phase: str, epochs: list[dict[str, Any]]) -> None:
        self.conn.execute("DELETE FROM epochs WHERE owner = ? AND phase = ?", (owner, phase))
        self.conn.executemany(
            "INSERT INTO epochs VALUES (?,?,?,?)",
            [(owner, phase, i, json.dumps(e)) for i, e in enumerate(epochs)],
        )

    # -- reading -------------------------------------------------------------------------------
    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every run as a dict (settings and metrics decoded), in a stable order."""
        q = "SELECT * FROM runs" + (" WHERE status = ?" if status else "")
        q += " ORDER BY dataset, model, method, compression, seed, id"
        rows = self.conn.execute(q, (status,) if status else ()).fetchall()
        return [_decode(r) for r in rows]

    def bases(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM bases ORDER BY dataset, model, seed, id").fetchall()
        return [_decode(r) for r in rows]

    def epochs(self, owner: str, phase: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT metrics FROM epochs WHERE owner = ? AND phase = ? ORDER BY epoch", (owner, phase)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["settings"] = json.loads(d["settings"])
    d["metrics"] = json.loads(d["metrics"]) if d.get("metrics") else {}
    return d


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
