"""The one writer of prediction records: each answered image's audit row and, when its request
names a sample, its cell there, in one transaction (app/records/prediction_rows.py).

It stores the image's sha256, never the image or its file name (which may name a patient).
Writes happen on one background thread; what queued up while it wrote is written in one
transaction (group commit: under load one commit per batch of requests, not per request). A
database that is locked by another process, or unreachable while it restarts, is waited for
with backoff rather than losing the rows; each audit row is keyed by the server's own request id
and its place in the request, so a retried write can never double a row. The client's
X-Request-ID, when it sent one, is kept beside it.

With a journal (the default), a request's records are appended to a local file and fsync'd
before its answer goes out (app/records/prediction_journal.py): a locked or absent database, a
crash or kill -9 then lose nothing, and start-up writes what the journal holds
(app/records/journal_replay.py). What an answer waits for, and what becomes of a record whose
request is refused after all, is app/records/pending_records.py's business.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from app.logging_config import current_client_request_id
from app.records import journal_replay, prediction_rows
from app.records.audit_rows import COLUMNS, AuditRecord
from app.records.pending_records import Pending
from app.records.prediction_journal import PredictionJournal
from app.records.prediction_rows import CellResult, PredictionRecord, as_line, not_answered
from app.records.records_errors import RecordsDatabaseError, reason_of

log = logging.getLogger("leukolens.audit")

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


def is_transient(error: SQLAlchemyError, sqlite: bool) -> bool:
    """Worth waiting for: a lock held by another writer, or a server that is away."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    if not sqlite:
        return True  # refused, reset, shutting down, starting up: all pass
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message


class PredictionRecords:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        where: str,
        sample_turn: threading.Lock,
        audit: bool = True,
        journal: Path | None = None,
        on_quarantined: Callable[[int], None] | None = None,
        after_write: Callable[[], None] | None = None,
    ) -> None:
        """`engine`: the records' database, migrated; `where`: it, as messages name it;
        `sample_turn`: the lock every write to a sample takes in this process; `audit`: keep
        the audit rows (off, a record is its cell alone, and one without a sample is nothing);
        `journal`: the local file that holds records until the database has them;
        `on_quarantined`: told how many journal lines were set aside (a metric);
        `after_write`: called after each commit (the records' pruning, when it is due)."""
        self._engine = engine
        self.where = where
        self.sqlite = engine.dialect.name == "sqlite"
        self.audit = audit
        self.failed = 0
        self._sample_turn = sample_turn
        # A database in memory is one connection shared by every thread: its writes take turns.
        self._one_connection = isinstance(engine.pool, StaticPool)
        self._after_write = after_write
        self._backlog = 0
        self._closing_since: float | None = None
        self._lock = threading.Lock()
        self._journal: PredictionJournal | None = None
        # Records the database refused for good: the journal keeps them for the next start, and
        # the lines no quarantine file could take yet.
        self._given_up: list[dict[str, object]] = []
        self._unplaced: list[bytes] = []
        self._on_quarantined = on_quarantined
        self._journalled_since_reset = False
        if journal is not None and audit:
            try:
                self._journal = PredictionJournal(journal)
            except OSError as error:
                raise RecordsDatabaseError(
                    f"cannot open the journal at {journal}: {error}. Set "
                    "LEUKOLENS_AUDIT_JOURNAL_PATH to a writable file (or "
                    "LEUKOLENS_AUDIT_JOURNAL=false)."
                ) from error
            self._replay_journal()
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon, so that records never closed cannot hold the interpreter open; `close` (at
        # shutdown) writes what is queued.
        self._writer = threading.Thread(
            target=self._write_queued, name="leukolens-records", daemon=True
        )
        self._writer.start()

    @property
    def journalled(self) -> bool:
        return self._journal is not None

    @property
    def backlog(self) -> int:
        """Rows submitted and not yet committed (waiting for a busy or absent database)."""
        return self._backlog

    @property
    def engine(self) -> sa.Engine:
        """The records' database, for reading (app/records/audit_export.py)."""
        return self._engine

    def _replay_journal(self) -> None:
        """Write the records a previous process journalled and may not have committed (rows
        already in the database are skipped by their key); a line that is no record, or that
        the database refuses, is set aside (app/records/journal_replay.py)."""
        assert self._journal is not None
        replayed = journal_replay.replay(self._journal.lines(), self._write_rows)
        self._unplaced = journal_replay.settle(self._journal.path, replayed, self._on_quarantined)
        self._given_up = replayed.kept
        self._journal.rewrite(replayed.kept, self._unplaced)

    def _write_rows(self, rows: list[dict[str, object]]) -> None:
        """Journal lines, as a replay writes them: audit rows alone, never a cell."""
        with self._engine.begin() as connection:
            records = [prediction_rows.replayed(row) for row in rows]
            prediction_rows.write_audit_rows(connection, records)

    def submit(self, records: Sequence[PredictionRecord]) -> Pending:
        """Queue one request's records; returns at once. See Pending for what its `recorded`
        future waits for; with the audit off, a request that joins no sample has nothing to
        write and is done at once."""
        client_id = current_client_request_id.get()
        keyed = [
            replace(record, item=index, client_request_id=record.client_request_id or client_id)
            for index, record in enumerate(records)
        ]
        pending = Pending(keyed)
        if not self.audit and not pending.joins_sample:
            pending.settle([])
            return pending
        journalled = None
        with self._lock:  # the queues' order is the lock's order (see _write_group)
            queued = self._enqueue(pending)
            if queued and self._journal is not None and keyed:
                journalled = self._journal.append([as_line(record) for record in keyed])
                self._journalled_since_reset = True
        if not queued:
            if keyed:
                self._count_failed(len(keyed))
                log.error(
                    "audit log closed; %d prediction(s) were answered but not recorded in %s",
                    len(keyed),
                    self.where,
                )
            pending.give_up()
            pending.settle([])
        elif not pending.joins_sample:
            pending.durable_once_journalled(journalled)
        return pending

    def unanswered(self, pending: Pending) -> None:
        """Its client left before the answer went out: its rows say `not_answered`. A record
        whose one attempt is already under way or over stays in its sample (the page withdraws
        it), and its audit rows are marked once it is written (the marks queue behind it)."""
        if not self.abandon(pending):
            self.submit([not_answered(record, mark=True) for record in pending.records])

    def abandon(self, pending: Pending) -> bool:
        """Its request is refused after all (it waited too long, or its rows could not be kept):
        its rows say `not_answered`, whether they are written yet or not. False when it joins a
        sample and its one attempt is under way or over: its outcome is then the answer."""
        if pending.for_sample:
            return pending.abandon()
        marks = [not_answered(record, mark=True) for record in pending.records]
        if marks:
            self.submit(marks)
        return True

    def _enqueue(self, pending: Pending) -> bool:
        """Under the lock: so that nothing is queued behind close's end marker."""
        if self._closed:
            return False
        self._backlog += len(pending.records)
        self._queue.put(pending)
        return True

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is written (or given up on)."""
        marker = Pending([])
        with self._lock:
            queued = self._enqueue(marker)
        if queued:
            marker.written.result(timeout)

    def _write_queued(self) -> None:
        """The writer thread: each turn takes what has queued up, until `close`."""
        while True:
            group = [self._queue.get()]
            while group[-1] is not None and len(group) < MAX_REQUESTS_PER_TRANSACTION:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            requests = [pending for pending in group if pending is not None]
            if requests:
                try:
                    self._write_group(requests)
                except Exception:  # the thread must outlive any one group
                    log.exception("records writer: unexpected error")
            if group[-1] is None:
                return

    def _write_group(self, requests: list[Pending]) -> None:
        """All the requests' records in one transaction; should that fail for a reason other
        than a busy or absent database, each request on its own, so that one bad request costs
        only its own rows."""
        rows = sum(len(pending.records) for pending in requests)
        committed = dict.fromkeys(map(id, requests), True)
        try:
            outcome = self._write_with_retries(requests, alone=len(requests) == 1)
            if outcome is Write.TRY_APART:
                for pending in requests:
                    alone = self._write_with_retries([pending], alone=True)
                    committed[id(pending)] = alone is Write.DONE
            elif outcome is Write.GIVEN_UP:
                committed = dict.fromkeys(committed, False)
        finally:
            with self._lock:
                self._backlog -= rows
                for pending in requests:
                    if not committed[id(pending)]:
                        self._given_up += [as_line(record) for record in pending.records]
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
            for pending in requests:
                if not committed[id(pending)]:
                    pending.give_up()

    def _write_with_retries(self, requests: list[Pending], *, alone: bool) -> Write:
        """DONE, GIVEN_UP, or (not `alone`) TRY_APART: each request on its own. A record that
        joins a sample has one attempt; refused, it is written on as not answered."""
        backoff = FIRST_BACKOFF_SECONDS
        other_errors = 0
        while True:
            try:
                results = self._insert(requests)
                for pending, start in zip(requests, _starts(requests), strict=True):
                    pending.settle(results[start : start + len(pending.records)])
                self._after_commit()
                return Write.DONE
            except SQLAlchemyError as error:
                records = _records_of(requests)
                transient = is_transient(error, self.sqlite)
                if transient or alone:  # that was their one attempt (apart, each gets its own)
                    for pending in requests:
                        pending.refuse(reason_of(error))
                if not transient:
                    other_errors += 1
                    if other_errors >= OTHER_ERROR_ATTEMPTS or not isinstance(
                        error, OperationalError
                    ):
                        return self._give_up(records) if alone else Write.TRY_APART
                elif self._grace_over():
                    return self._give_up(records)
                log.warning(
                    "records database unavailable (%s); retrying in %.2f s",
                    reason_of(error),
                    backoff,
                )
            except Exception as error:
                if not alone:
                    return Write.TRY_APART
                for pending in requests:
                    pending.refuse(str(error))
                return self._give_up(_records_of(requests))
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _insert(self, requests: list[Pending]) -> list[CellResult]:
        """One transaction for the group: all its rows are written, or none and retried. The
        samples' turn is taken in this process first when any record joins one; each request
        is claimed only then, so one whose client left while the turn was busy (another write
        to a sample, the pruning) still joins no sample."""
        joins = any(pending.joins_sample for pending in requests)
        with self._turn(joins or self._one_connection):
            for pending in requests:
                pending.claim()
            records = _records_of(requests)
            if not records:
                return []
            with self._engine.begin() as connection:
                return prediction_rows.write(connection, records, audit=self.audit)

    def _after_commit(self) -> None:
        """The pruning, when due: once the group's answers are settled, so that none waits for
        it; its failure is logged and costs no record."""
        if self._after_write is None:
            return
        try:
            self._after_write()
        except Exception:
            log.exception("records: the pruning after a write failed")

    @contextlib.contextmanager
    def _turn(self, needed: bool) -> Iterator[None]:
        if not needed:
            yield
            return
        with self._sample_turn:
            yield

    def _grace_over(self) -> bool:
        closing = self._closing_since
        return closing is not None and time.monotonic() - closing > CLOSE_GRACE_SECONDS

    def _count_failed(self, rows: int) -> None:
        # Under the lock: a request thread (after close) and the writer thread both count.
        with self._lock:
            self.failed += rows

    def _give_up(self, records: list[PredictionRecord]) -> Write:
        self._count_failed(len(records))
        log.exception(
            "audit log write failed; %d prediction(s) were answered but not recorded in %s",
            len(records),
            self.where,
        )
        return Write.GIVEN_UP

    def rows(self) -> list[AuditRecord]:
        """The audit rows, in the order they were written."""
        with self._engine.connect() as connection:
            result = connection.execute(sa.select(*COLUMNS).order_by(COLUMNS[0].table.c.id))
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


def _starts(requests: list[Pending]) -> list[int]:
    """Where each request's records start in the group's."""
    starts, position = [], 0
    for pending in requests:
        starts.append(position)
        position += len(pending.records)
    return starts


def _records_of(requests: list[Pending]) -> list[PredictionRecord]:
    """The group's records as they stand (a request's own turn to not answered included)."""
    return [record for pending in requests for record in pending.records]
