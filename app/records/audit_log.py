"""An audit trail of predictions: what was answered, when, by which model.

It stores the image's sha256, never the image or its file name (which may name a patient).
The database is a SQLite file by default, or any SQLAlchemy URL (PostgreSQL for several
replicas); app/records/records_db.py holds the schema and its migrations. Writes happen on one
background thread and never fail a prediction; what queued up while it wrote is written in one
transaction (group commit: under load one commit per batch of requests, not per request). A
database that is locked by another process, or unreachable while it restarts, is waited for
with backoff rather than losing the rows; each row is keyed by the server's own request id
and its place in the request, so a retried write can never double a row. The client's
X-Request-ID, when it sent one, is kept beside it.

With a journal (the default), a request's rows are also appended to a local file and fsync'd
before its answer goes out (app/records/audit_journal.py): a locked or absent database, a
crash or kill -9 then lose nothing, and start-up writes what the journal holds. When neither
the journal nor the database can take a request's rows, `submit`'s future fails with
AuditUnavailableError and the server answers 503 rather than answering unrecorded.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import asdict, replace
from enum import Enum
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.logging_config import current_client_request_id
from app.records import journal_replay, records_db
from app.records.audit_journal import AuditJournal
from app.records.audit_rows import (
    COLUMNS,
    AuditLogError,
    AuditRecord,
    AuditUnavailableError,
    Queued,
    done_future,
    durable_future,
    is_transient,
    settled_future,
)
from app.records.privileges import may_delete

__all__ = ["AuditLog", "AuditLogError", "AuditRecord", "AuditUnavailableError"]

log = logging.getLogger("leukolens.audit")

SECONDS_PER_DAY = 86_400.0
PRUNE_EVERY_WRITES = 1_000
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 2.0
CLOSE_GRACE_SECONDS = 30.0
OTHER_ERROR_ATTEMPTS = 3
MAX_REQUESTS_PER_TRANSACTION = 256


class Write(Enum):
    """How a write of rows ended."""

    DONE = "done"
    GIVEN_UP = "given up"
    TRY_APART = "try each request apart"


class AuditLog:
    def __init__(
        self,
        database: Path | str,
        retention_days: float,
        *,
        busy_timeout_seconds: float = 5.0,
        journal: Path | None = None,
        on_quarantined: Callable[[int], None] | None = None,
    ) -> None:
        """`database`: a SQLite file, or a SQLAlchemy URL such as postgresql+psycopg://...;
        `journal`: the local file that holds rows until the database has them;
        `on_quarantined`: told how many journal lines were set aside (a metric)."""
        url = records_db.sqlite_url(database) if isinstance(database, Path) else database
        self.sqlite = records_db.is_sqlite(url)
        # Named in messages; a URL's password never is.
        self.where = (
            str(database.resolve())
            if isinstance(database, Path)
            else sa.make_url(url).render_as_string(hide_password=True)
        )
        self.retention_days = retention_days
        self.failed = 0
        self._backlog = 0
        self._closing_since: float | None = None
        self._lock = threading.Lock()
        self._writes = 0
        try:
            if isinstance(database, Path):
                database.parent.mkdir(parents=True, exist_ok=True)
            self._engine = records_db.create_engine(url, busy_timeout_seconds=busy_timeout_seconds)
            records_db.migrate(self._engine)
            # A least-privilege role leaves pruning to the owner's (python -m app.records prune).
            self._may_prune = may_delete(self._engine, records_db.predictions.name)
        except (OSError, SQLAlchemyError, records_db.SchemaBehindError) as error:
            setting = (
                "LEUKOLENS_AUDIT_LOG_PATH to a writable file"
                if isinstance(database, Path)
                else "LEUKOLENS_DATABASE_URL to a reachable database"
            )
            raise AuditLogError(
                f"cannot open the audit log at {self.where}: {error}. Set {setting} "
                "(or LEUKOLENS_AUDIT_LOG=false)."
            ) from error
        self._journal: AuditJournal | None = None
        # Rows the database refused for good: the journal keeps them for the next start, and
        # the lines no quarantine file could take yet.
        self._given_up: list[dict[str, object]] = []
        self._unplaced: list[bytes] = []
        self._on_quarantined = on_quarantined
        self._journalled_since_reset = False
        if journal is not None:
            try:
                self._journal = AuditJournal(journal)
            except OSError as error:
                raise AuditLogError(
                    f"cannot open the audit journal at {journal}: {error}. Set "
                    "LEUKOLENS_AUDIT_JOURNAL_PATH to a writable file (or "
                    "LEUKOLENS_AUDIT_JOURNAL=false)."
                ) from error
            self._replay_journal()
        self._queue: queue.SimpleQueue[Queued | None] = queue.SimpleQueue()
        self.prune()
        self._closed = False
        # A daemon, so that a log never closed cannot hold the interpreter open; `close` (at
        # shutdown) writes what is queued.
        self._writer = threading.Thread(
            target=self._write_queued, name="leukolens-audit", daemon=True
        )
        self._writer.start()

    @property
    def journalled(self) -> bool:
        """Whether an answer can wait for its rows to be durable (see `submit`)."""
        return self._journal is not None

    @property
    def backlog(self) -> int:
        """Rows submitted and not yet committed (waiting for a busy or absent database)."""
        return self._backlog

    def _replay_journal(self) -> None:
        """Write the rows a previous process journalled and may not have committed (rows
        already in the database are skipped by their key); a line that is no row, or that the
        database refuses, is set aside (app/records/journal_replay.py)."""
        assert self._journal is not None
        replayed = journal_replay.replay(self._journal.lines(), self._write_rows)
        self._unplaced = journal_replay.settle(self._journal.path, replayed, self._on_quarantined)
        self._given_up = replayed.kept
        self._journal.rewrite(replayed.kept, self._unplaced)

    def submit(self, records: Sequence[AuditRecord]) -> Future[None]:
        """Queue one request's records; returns at once, with a future that is done once they
        are durable (in the fsync'd journal, or committed) and fails with
        AuditUnavailableError when neither could take them. Without a journal it is done
        once they are committed or given up on (an answer never waits for it)."""
        client_id = current_client_request_id.get()
        keyed = [
            replace(record, item=index, client_request_id=record.client_request_id or client_id)
            for index, record in enumerate(records)
        ]
        journalled: Future[None] | None = None
        with self._lock:  # the queues' order is the lock's order (see _write_group)
            written = self._enqueue(keyed)
            if written is not None and self._journal is not None and keyed:
                journalled = self._journal.append([asdict(record) for record in keyed])
                self._journalled_since_reset = True
        if written is None:
            if keyed:
                self._count_failed(keyed)
                log.error(
                    "audit log closed; %d prediction(s) were answered but not recorded in %s",
                    len(keyed),
                    self.where,
                )
            return done_future()
        if journalled is None:
            return settled_future(written)
        return durable_future(journalled, written, len(keyed))

    def mark_not_answered(self, records: Sequence[AuditRecord]) -> None:
        """The request these records were submitted for was refused after all (503): their
        rows say `not_answered`, whether they are written yet or not (keyed as `submit` keys
        them, in order behind them). Nothing waits for it."""
        self.submit([replace(record, outcome=records_db.NOT_ANSWERED) for record in records])

    def _enqueue(self, keyed: list[AuditRecord]) -> Future[bool] | None:
        """Under the lock: so that nothing is queued behind close's end marker."""
        written: Future[bool] = Future()
        if self._closed:
            return None
        self._backlog += len(keyed)
        self._queue.put(Queued(keyed, written))
        return written

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is written (or given up on)."""
        with self._lock:
            written = self._enqueue([])
        if written is not None:
            written.result(timeout)

    def _write_queued(self) -> None:
        """The writer thread: each turn takes what has queued up, until `close`."""
        while True:
            group = [self._queue.get()]
            while group[-1] is not None and len(group) < MAX_REQUESTS_PER_TRANSACTION:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            requests = [queued for queued in group if queued is not None]
            if requests:
                try:
                    self._write_group(requests)
                except Exception:  # the thread must outlive any one group
                    log.exception("audit writer: unexpected error")
            if group[-1] is None:
                return

    def _write_group(self, requests: list[Queued]) -> None:
        """All the requests' rows in one transaction; should that fail for a reason other than
        a busy or absent database, each request on its own, so that one bad request costs only
        its own rows."""
        records = [record for queued in requests for record in queued.records]
        committed = dict.fromkeys(map(id, requests), True)
        try:
            outcome = self._write_with_retries(records, alone=len(requests) == 1)
            if outcome is Write.TRY_APART:
                for queued in requests:
                    alone = self._write_with_retries(queued.records, alone=True)
                    committed[id(queued)] = alone is Write.DONE
            elif outcome is Write.GIVEN_UP:
                committed = dict.fromkeys(committed, False)
        finally:
            with self._lock:
                self._backlog -= len(records)
                for queued in requests:
                    if not committed[id(queued)]:
                        self._given_up += [asdict(record) for record in queued.records]
                # Nothing waits for the database: every journalled row is in it, or given up
                # on. The reset is queued behind every append made so far, all under this
                # lock, so it never drops a row still waiting; no I/O happens here.
                if (
                    self._journal is not None
                    and self._backlog == 0
                    and self._journalled_since_reset
                ):
                    self._journal.reset(list(self._given_up), self._unplaced)
                    self._journalled_since_reset = False
            for queued in requests:
                with contextlib.suppress(InvalidStateError):  # its submitter cancelled it
                    queued.written.set_result(committed[id(queued)])

    def _write_with_retries(self, records: list[AuditRecord], *, alone: bool) -> Write:
        """DONE, GIVEN_UP, or (not `alone`) TRY_APART: each request on its own."""
        if not records:
            return Write.DONE
        backoff = FIRST_BACKOFF_SECONDS
        other_errors = 0
        while True:
            try:
                self._insert(records)
                return Write.DONE
            except SQLAlchemyError as error:
                if not is_transient(error, self.sqlite):
                    other_errors += 1
                    if other_errors >= OTHER_ERROR_ATTEMPTS or not isinstance(
                        error, OperationalError
                    ):
                        return self._give_up(records) if alone else Write.TRY_APART
                elif self._grace_over():
                    return self._give_up(records)
                log.warning(
                    "audit database unavailable (%s); retrying in %.2f s",
                    str(getattr(error, "orig", error)).strip(),
                    backoff,
                )
            except Exception:
                return self._give_up(records) if alone else Write.TRY_APART
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _write_rows(self, rows: list[dict[str, object]]) -> None:
        with self._engine.begin() as connection:
            records_db.write_audit_rows(connection, rows)

    def _insert(self, records: list[AuditRecord]) -> None:
        # One transaction per group: all its rows are written, or none and retried.
        self._write_rows([asdict(record) for record in records])
        with self._lock:
            self._writes += len(records)
            due = self._writes >= PRUNE_EVERY_WRITES
        if due:
            self.prune()

    def _grace_over(self) -> bool:
        closing = self._closing_since
        return closing is not None and time.monotonic() - closing > CLOSE_GRACE_SECONDS

    def _count_failed(self, records: list[AuditRecord]) -> None:
        # Under the lock: a request thread (after close) and the writer thread both count.
        with self._lock:
            self.failed += len(records)

    def _give_up(self, records: list[AuditRecord]) -> Write:
        self._count_failed(records)
        log.exception(
            "audit log write failed; %d prediction(s) were answered but not recorded in %s",
            len(records),
            self.where,
        )
        return Write.GIVEN_UP

    def prune(self) -> int:
        """Delete records older than the retention period (where the role may)."""
        cutoff = time.time() - self.retention_days * SECONDS_PER_DAY
        with self._lock:
            self._writes = 0
        if not self._may_prune:
            return 0
        table = records_db.predictions
        with self._engine.begin() as connection:
            return connection.execute(table.delete().where(table.c.time < cutoff)).rowcount

    @property
    def engine(self) -> sa.Engine:
        """The audit database, for reading (app/records/audit_export.py)."""
        return self._engine

    def rows(self) -> list[AuditRecord]:
        with self._engine.connect() as connection:
            result = connection.execute(sa.select(*COLUMNS).order_by(records_db.predictions.c.id))
            return [AuditRecord(*row) for row in result]

    def close(self) -> None:
        """Write what is queued (waiting up to CLOSE_GRACE_SECONDS for the database)."""
        self._closing_since = time.monotonic()
        with self._lock:
            already_closed, self._closed = self._closed, True
            if not already_closed:
                self._queue.put(None)
        self._writer.join()
        if self._journal is not None:
            self._journal.close()
        self._engine.dispose()
