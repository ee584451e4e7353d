"""An audit trail of predictions in SQLite: what was answered, when, by which model.

It stores the image's sha256, never the image or its file name (which may name a patient).
Writes happen on one background thread; a failure is logged and never fails a prediction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

log = logging.getLogger("leukolens.audit")

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    request_id TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    probability_all REAL NOT NULL,
    label TEXT NOT NULL,
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_time ON predictions (time);
"""
SECONDS_PER_DAY = 86_400.0
PRUNE_EVERY_WRITES = 1_000


@dataclass(frozen=True)
class AuditRecord:
    time: float
    request_id: str
    image_sha256: str
    model_id: str
    model_version: str
    probability_all: float
    label: str
    latency_ms: float


class AuditLog:
    def __init__(self, path: Path, retention_days: float) -> None:
        self.path = path
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._writes = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="leukolens-audit")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(SCHEMA)
        self.prune()

    def submit(self, records: Sequence[AuditRecord]) -> Future[None]:
        """Queue records for writing; returns at once."""
        return self._writer.submit(self._write, list(records))

    def _write(self, records: list[AuditRecord]) -> None:
        try:
            with self._lock:
                self._connection.executemany(
                    "INSERT INTO predictions (time, request_id, image_sha256, model_id, "
                    "model_version, probability_all, label, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [astuple(record) for record in records],
                )
                self._writes += len(records)
                due = self._writes >= PRUNE_EVERY_WRITES
            if due:
                self.prune()
        except Exception:
            log.exception("audit log write failed; the predictions were still answered")

    def prune(self) -> int:
        """Delete records older than the retention period."""
        cutoff = time.time() - self.retention_days * SECONDS_PER_DAY
        with self._lock:
            self._writes = 0
            return self._connection.execute(
                "DELETE FROM predictions WHERE time < ?", (cutoff,)
            ).rowcount

    def rows(self) -> list[AuditRecord]:
        with self._lock:
            cursor = self._connection.execute(
                "SELECT time, request_id, image_sha256, model_id, model_version, "
                "probability_all, label, latency_ms FROM predictions ORDER BY id"
            )
            return [AuditRecord(*row) for row in cursor.fetchall()]

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        with self._lock:
            self._connection.close()
