"""An audit trail of predictions in SQLite: what was answered, when, by which model.

It stores the image's sha256, never the image or its file name (which may name a patient).
Writes happen on one background thread and never fail a prediction. A database another
process holds locked is waited for, with backoff, rather than losing the rows; each row is
keyed by the server's own request id and its place in the request, so a retried write can
never double a row. The client's X-Request-ID, when it sent one, is kept beside it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path

from app.request_id import current_client_request_id

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
# Added after the first release; older databases get them on open.
ADDED_COLUMNS = {
    "client_request_id": "TEXT NOT NULL DEFAULT ''",
    "item": "INTEGER NOT NULL DEFAULT 0",
}
UNIQUE_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS predictions_key ON predictions (request_id, item)"
SECONDS_PER_DAY = 86_400.0
PRUNE_EVERY_WRITES = 1_000
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 2.0
CLOSE_GRACE_SECONDS = 30.0
OTHER_ERROR_ATTEMPTS = 3


class AuditLogError(RuntimeError):
    """The audit database cannot be opened; the message names the file."""


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
    client_request_id: str = ""
    item: int = 0


COLUMNS = ", ".join(field.name for field in fields(AuditRecord))
INSERT = (
    f"INSERT OR IGNORE INTO predictions ({COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in fields(AuditRecord))})"
)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


class AuditLog:
    def __init__(
        self, path: Path, retention_days: float, *, busy_timeout_seconds: float = 5.0
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.failed = 0
        self._backlog = 0
        self._closing_since: float | None = None
        self._lock = threading.Lock()
        self._writes = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_seconds
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.executescript(SCHEMA)
            self._add_columns()
            self._connection.execute(UNIQUE_KEY)
        except (OSError, sqlite3.Error) as error:
            raise AuditLogError(
                f"cannot open the audit log at {path.resolve()}: {error}. Set "
                "LEUKOLENS_AUDIT_LOG_PATH to a writable file (or LEUKOLENS_AUDIT_LOG=false)."
            ) from error
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="leukolens-audit")
        self.prune()

    def _add_columns(self) -> None:
        present = {row[1] for row in self._connection.execute("PRAGMA table_info(predictions)")}
        for name, declaration in ADDED_COLUMNS.items():
            if name not in present:
                self._connection.execute(f"ALTER TABLE predictions ADD COLUMN {name} {declaration}")

    @property
    def backlog(self) -> int:
        """Rows submitted and not yet committed (waiting for a busy database, for instance)."""
        return self._backlog

    def submit(self, records: Sequence[AuditRecord]) -> Future[None]:
        """Queue one request's records for writing; returns at once."""
        client_id = current_client_request_id.get()
        keyed = [
            replace(record, item=index, client_request_id=record.client_request_id or client_id)
            for index, record in enumerate(records)
        ]
        with self._lock:
            self._backlog += len(keyed)
        return self._writer.submit(self._write, keyed)

    def _write(self, records: list[AuditRecord]) -> None:
        try:
            self._write_with_retries(records)
        finally:
            with self._lock:
                self._backlog -= len(records)

    def _write_with_retries(self, records: list[AuditRecord]) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        other_errors = 0
        while True:
            try:
                self._insert(records)
                return
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    other_errors += 1
                    if other_errors >= OTHER_ERROR_ATTEMPTS:
                        self._give_up(records)
                        return
                elif self._grace_over():
                    self._give_up(records)
                    return
                log.warning("audit database busy (%s); retrying in %.2f s", error, backoff)
            except Exception:
                self._give_up(records)
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _insert(self, records: list[AuditRecord]) -> None:
        with self._lock:
            try:
                # One transaction per request: all its rows are written, or none and retried.
                self._connection.execute("BEGIN IMMEDIATE")
                self._connection.executemany(INSERT, [astuple(record) for record in records])
                self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
            self._writes += len(records)
            due = self._writes >= PRUNE_EVERY_WRITES
        if due:
            self.prune()

    def _grace_over(self) -> bool:
        closing = self._closing_since
        return closing is not None and time.monotonic() - closing > CLOSE_GRACE_SECONDS

    def _give_up(self, records: list[AuditRecord]) -> None:
        self.failed += len(records)
        log.exception(
            "audit log write failed; %d prediction(s) were answered but not recorded in %s",
            len(records),
            self.path,
        )

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
            cursor = self._connection.execute(f"SELECT {COLUMNS} FROM predictions ORDER BY id")
            return [AuditRecord(*row) for row in cursor.fetchall()]

    def close(self) -> None:
        """Write what is queued (waiting up to CLOSE_GRACE_SECONDS for a busy database)."""
        self._closing_since = time.monotonic()
        self._writer.shutdown(wait=True)
        with self._lock:
            self._connection.close()
