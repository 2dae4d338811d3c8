"""One SQLite database per benchmark directory: runs, base models, metrics and per-epoch logs.

Only the process driving a sweep writes, and :func:`locked` keeps a second sweep out of the folder. Every state change is one transaction, so a kill at any
moment loses at most the runs in progress: a run is either absent, ``pending``/``running`` (redone on
resume), or ``done`` with all of its metrics and epoch rows. Identities are primary keys, so a run
can never appear twice.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import StoreError
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


def _schema_columns() -> dict[str, set[str]]:
    """Each table's columns as SCHEMA creates them (read back from an in-memory database)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out = {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    conn.close()
    return out


_COLUMNS = _schema_columns()
LOCK_NAME = "sweep.lock"


def folder(directory: str | Path) -> Path:
    """``directory`` as a results folder (made if missing), or a :class:`StoreError` saying why it cannot be."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a results folder; choose another --out")
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the results folder {path}: {err.strerror or err}") from None
    return path


@contextlib.contextmanager
def locked(directory: str | Path) -> Iterator[None]:
    """Hold the folder's sweep lock; a second sweep on the same folder is refused with the holder's pid."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform (Windows): one sweep per folder is up to the user
        yield
        return
    path = folder(directory) / LOCK_NAME
    try:
        handle = open(path, "a+")
    except OSError as err:
        raise StoreError(f"cannot write in {path.parent} ({err.strerror or err}); is the folder read-only?") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StoreError(f"another sweep (pid {holder}) is running in {path.parent}; wait for it to finish, "
                             "then run again with --resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    """The results database of one benchmark directory (created on first use).

    A database that cannot be opened or written, is not SQLite, or fails SQLite's integrity check
    raises :class:`StoreError` naming the file; finished runs in it are never touched.
    """

    def __init__(self, directory: str | Path):
        self.directory = folder(directory)
        self.path = self.directory / DB_NAME
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a results database; move it away or choose another --out")
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open {self.path}: {err}") from None
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            with self._tx():
                for stmt in SCHEMA.strip().split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
                self._add_columns()
            self._check_schema()
        except (sqlite3.Error, StoreError) as err:
            self.conn.close()
            raise StoreError(f"{self.path} is not a usable results database ({_reason(err)}); "
                             "restore it from a backup or choose another --out") from None

    def _add_columns(self) -> None:
        """Give a store of the previous layout the columns added since (structure, deployed_as)."""
        new = {"structure", "deployed_as"}
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
        if _COLUMNS["runs"] - new <= have:  # ours, older: add what is missing; anything else is left to the check
            for column in sorted(new - have):
                self.conn.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")

    def _check_schema(self) -> None:
        """Tables of the same names made by another program (or an older layout) are not ours to write."""
        for table, columns in _COLUMNS.items():
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if not columns <= have:
                raise StoreError(f"table {table} lacks the columns {', '.join(sorted(columns - have))}")

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

    def finish_base(self, base: BaseSpec, metrics: dict[str, Any], epochs: list[dict[str, Any]],
                    state_sha256: str | None = None) -> None:
        """Record a trained base; ``state_sha256`` is the digest of its saved weights, checked on reuse."""
        with self._tx():
            self._epochs(base.id, "train", epochs)
            if state_sha256 is not None:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"base_sha256:{base.id}", state_sha256))
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

    def run_ids(self) -> set[str]:
        """The id of every registered run, whatever its status."""
        return {row[0] for row in self.conn.execute("SELECT id FROM runs")}

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["settings"] = json.loads(d["settings"])
    d["metrics"] = json.loads(d["metrics"]) if d.get("metrics") else {}
    return d


def _reason(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection.

    A SQLite failure (read-only file, full disk, a damaged page) becomes a :class:`StoreError`.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StoreError(f"cannot write the results database: {_reason(err)}") from None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.Error as err:
            if exc_type is None:
                raise StoreError(f"cannot write the results database: {_reason(err)}") from None
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"the results database failed: {_reason(exc)}") from None
