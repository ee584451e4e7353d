"""Samples and the reviewers' decisions on them, in the records' one database.

The same database as the prediction audit (app/records/records_db.py: a SQLite file by default,
PostgreSQL by LEUKOLENS_DATABASE_URL), so that every replica of a deployment reads and writes the
same samples: predictions through one replica and decisions through another make one sample.
A scored image's cell is written with its audit row, in one transaction, by the one writer of
prediction records (app/records/prediction_records.py, opened here as `predictions`); this
module writes the rest. Which scored images belong to which sample and who uploaded them, every
decision a reviewer made, and the uploads their owners withdrew (app/records/withdrawals.py).
No row holds an image or a file name, only the image's sha256 and the request that scored it.
Rows are never updated; a changed decision is a new row (the latest counts), a withdrawal is a
row of its own, and a decision retried under its Idempotency-Key is its first row again
(app/records/decision_replays.py). Rows older than the retention (LEUKOLENS_RETENTION_DAYS),
audit rows among them, are deleted, at start-up and then hourly, where the database role may
delete (app/records/privileges.py); the triggers refuse to delete any sample record younger
than 30 days. Each decision says where its reviewer's name came from (`reviewer_source`): typed
by the client, or the deployment's authenticated user.

Within a sample an image is one cell, known by its sha256: scoring the same bytes again is
recorded as a repeat of the first (`repeat_of`) and counted once everywhere
(app/records/prediction_rows.py). Writes to a sample take turns (a lock in this process, and on
PostgreSQL one across replicas), so that two uploads of the same bytes, or a withdrawal and a
decision, never interleave; each write rewrites the sample's summary row in its own
transaction, so that the list of samples is one indexed query (app/records/
sample_summaries.py). Once a sample is signed off (app/records/sign_off.py) it takes no new
cell and no withdrawal, and a decision only with the reason it amends the sample.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from app.core.domain.predictions import Prediction
from app.core.domain.reviews import ReviewerSource, ReviewRecord, ReviewRequest
from app.core.domain.samples import SampleReport, SampleSummary
from app.core.identities import ANONYMOUS, Identity
from app.records import records_db, sample_summaries, scoring_outcomes, sign_off
from app.records.decision_replays import earlier_record, fingerprint
from app.records.prediction_records import PredictionRecords
from app.records.prediction_rows import SampleEntry, joined, records_of
from app.records.privileges import may_delete
from app.records.records_db import lock_sample
from app.records.records_errors import (
    RecordsDatabaseError,
    RecordsUnavailableError,
    unavailable,
)
from app.records.sample_reads import decision_record, sample_report, utc
from app.records.withdrawals import WITHDRAWALS, withdraw, withdrawn, withdraws

log = logging.getLogger("leukolens.records")

PREDICTIONS = records_db.sample_predictions
AUDIT = records_db.predictions
DECISIONS = records_db.review_decisions
SIGN_OFFS = records_db.sample_sign_offs
__all__ = [
    "RecordsDatabaseError",
    "RecordsUnavailableError",
    "ReviewRecords",
    "UnknownPredictionError",
]
SECONDS_PER_DAY = 86_400.0
PRUNE_EVERY_SECONDS = 3_600.0
IN_MEMORY = ":memory:"


class UnknownPredictionError(LookupError):
    """A decision names an image that was not scored for that sample (or was withdrawn)."""


class ReviewRecords:
    def __init__(
        self,
        database: Path | str,
        *,
        busy_timeout_seconds: float = 10.0,
        retention_days: float | None = None,
        audit: bool = True,
        journal: Path | None = None,
        on_quarantined: Callable[[int], None] | None = None,
    ) -> None:
        """`database`: a SQLite file, `:memory:` (records lost at exit: `durable` is False), or
        a SQLAlchemy URL (postgresql+psycopg://). `retention_days`: rows older than this are
        pruned (at least the triggers' floor, records_db.MIN_RETENTION_DAYS); None keeps every
        row. `audit`, `journal` and `on_quarantined`: the prediction writer's (PredictionRecords);
        a database in memory has no journal."""
        if retention_days is not None and retention_days < records_db.MIN_RETENTION_DAYS:
            raise ValueError(
                f"records are kept at least {records_db.MIN_RETENTION_DAYS} days, "
                f"not {retention_days}"
            )
        self.durable = database != IN_MEMORY
        where = (
            str(database.resolve())
            if isinstance(database, Path)
            else "memory"
            if database == IN_MEMORY
            else sa.make_url(database).render_as_string(hide_password=True)
        )
        if database == IN_MEMORY:
            # One connection shared by every thread: the records live as long as the process.
            self._engine = sa.create_engine(
                "sqlite://",
                connect_args={"check_same_thread": False},
                poolclass=StaticPool,
            )
        else:
            url = records_db.sqlite_url(database) if isinstance(database, Path) else database
            self._engine = records_db.create_engine(url, busy_timeout_seconds=busy_timeout_seconds)
        try:
            if isinstance(database, Path):
                database.parent.mkdir(parents=True, exist_ok=True)
            records_db.migrate(self._engine)
            self._may_prune = may_delete(self._engine, DECISIONS.name)
        except (OSError, SQLAlchemyError, records_db.SchemaBehindError) as error:
            self._engine.dispose()
            raise RecordsDatabaseError(
                f"cannot open the records at {where}: {error}. Set "
                "LEUKOLENS_AUDIT_LOG_PATH to a writable file or LEUKOLENS_DATABASE_URL to a "
                "reachable database (or, for a demonstration only, LEUKOLENS_RECORDS_IN_MEMORY"
                "=true: records lost when the server stops)"
            ) from error
        self._sample_lock = threading.Lock()
        self.sign_offs = sign_off.SignOffs(self._engine, self._writing)
        self.retention_days = retention_days
        if retention_days is not None and not self._may_prune:
            log.info(
                "the records' database role may not delete: pruning is left to the owner's "
                "role (python -m app.records prune)"
            )
        self._pruned_at = 0.0
        self._prune_lock = threading.Lock()
        try:
            self.predictions = PredictionRecords(
                self._engine,
                where=where,
                sample_turn=self._sample_lock,
                audit=audit,
                journal=journal if self.durable else None,
                on_quarantined=on_quarantined,
                after_write=self.prune_if_due,
            )
        except RecordsDatabaseError:
            self._engine.dispose()
            raise
        self.prune_if_due()

    @contextmanager
    def _writing(self, sample_id: str) -> Iterator[Connection]:
        """One transaction that writes the sample, its turn taken: a lock in this process, and
        on PostgreSQL one across replicas; the sample's summary and its scorings' outcomes
        (app/records/scoring_outcomes.py) are rewritten before it ends."""
        try:
            with self._sample_lock, self._engine.begin() as connection:
                lock_sample(connection, sample_id)
                yield connection
                sample_summaries.refresh(connection, sample_id)
                scoring_outcomes.refresh(connection, sample_id)
        except SQLAlchemyError as error:
            raise unavailable(error) from error

    def add_predictions(
        self,
        sample_id: str,
        predictions: Sequence[Prediction],
        client_request_id: str = "",
        uploader: Identity = ANONYMOUS,
    ) -> None:
        """Record the sample's scored images as `uploader`'s, through the one writer, and wait
        for the commit; an image the sample already holds is recorded as a repeat of it, and the
        prediction says so (`repeat_of`). The server's requests go through the prediction
        service instead, which waits as their answers must (app/inference/service.py)."""
        records = records_of(
            predictions, SampleEntry(sample_id, uploader), client_request_id=client_request_id
        )
        repeats = self.predictions.submit(records).recorded.result()
        joined(predictions, sample_id, repeats)

    def withdraw(self, sample_id: str, client_request_id: str, owner: Identity) -> None:
        """`owner` takes their upload back out of the sample (app/records/withdrawals.py says
        when it is refused). The audit keeps its answers."""
        with self._writing(sample_id) as connection:
            sign_off.refuse_once_signed(connection, sample_id, "withdrawing an upload")
            withdraw(connection, sample_id, client_request_id, owner, time.time())

    def add_decision(
        self, review: ReviewRequest, *, reviewer_source: ReviewerSource = "free_text"
    ) -> ReviewRecord:
        """Append one decision; refused unless that image was scored for that sample (and
        not withdrawn). `reviewer_source` says whether the name was typed or authenticated."""
        record, _ = self.add_decision_once(review, reviewer_source=reviewer_source)
        return record

    def add_decision_once(
        self,
        review: ReviewRequest,
        *,
        reviewer_source: ReviewerSource = "free_text",
        idempotency_key: str | None = None,
    ) -> tuple[ReviewRecord, bool]:
        """As `add_decision`; under an `idempotency_key` already used for this decision, its
        first record (and True: replayed) with nothing new stored. IdempotencyConflictError
        when the key was used for another decision."""
        if review.reviewer is None:
            raise ValueError("a decision is recorded under a reviewer's name")
        fields = {**review.model_dump(), "reviewer_source": reviewer_source}
        digest = fingerprint(fields)
        for attempt in range(2):
            try:
                with self._writing(review.sample_id) as connection:
                    if idempotency_key is not None:
                        earlier = earlier_record(connection, idempotency_key, digest)
                        if earlier is not None:
                            return decision_record(earlier, durable=self.durable), True
                    record = self._insert_decision(
                        connection, review, fields, idempotency_key, digest
                    )
                break
            except RecordsUnavailableError as error:
                # Another request under the same key (another sample's turn) won the race:
                # its record is the answer, read on the second pass.
                if not isinstance(error.__cause__, IntegrityError) or attempt:
                    raise
        self.prune_if_due()
        return record, False

    def _insert_decision(
        self,
        connection: Connection,
        review: ReviewRequest,
        fields: dict[str, object],
        idempotency_key: str | None,
        digest: str,
    ) -> ReviewRecord:
        sign_off.refuse_decision_unless_amendment(connection, review)
        known = connection.execute(
            sa.select(PREDICTIONS.c.id)
            .where(
                PREDICTIONS.c.sample_id == review.sample_id,
                PREDICTIONS.c.request_id == review.request_id,
                PREDICTIONS.c.image_sha256 == review.image_sha256,
                ~withdrawn(),
            )
            .limit(1)
        ).first()
        if known is None:
            raise UnknownPredictionError(
                "no prediction with this request_id and image_sha256 in this sample"
            )
        now = time.time()
        result = connection.execute(
            DECISIONS.insert().returning(DECISIONS.c.id),
            {
                "time": now,
                **fields,
                "idempotency_key": idempotency_key,
                "request_fingerprint": digest if idempotency_key is not None else None,
            },
        )
        record_id = int(result.scalar_one())
        return ReviewRecord(id=record_id, time=utc(now), durable=self.durable, **fields)

    def sample(self, sample_id: str) -> SampleReport | None:
        """The sample as recorded, with its life cycle; None when no record names it. A sample
        whose every cell was withdrawn is still one: no cell, and its withdrawals."""
        try:
            with self._engine.connect() as connection:
                return sample_report(connection, sample_id, durable=self.durable)
        except SQLAlchemyError as error:
            raise unavailable(error) from error

    def samples(self, *, limit: int, offset: int = 0) -> tuple[list[SampleSummary], int]:
        """A page of samples, the most recently changed first, and how many there are: one
        query on the samples' summaries, whatever the records hold. Only live cells count,
        and only decisions on them."""
        try:
            with self._engine.connect() as connection:
                summaries, total = sample_summaries.page(connection, limit=limit, offset=offset)
        except SQLAlchemyError as error:
            raise unavailable(error) from error
        return [
            SampleSummary(
                sample_id=summary.sample_id,
                cells=summary.cells,
                reviewed=summary.reviewed,
                last_change=utc(summary.last_change),
            )
            for summary in summaries
        ], total

    def prune(self, now: float | None = None) -> int:
        """Delete the rows older than the retention; how many went. A withdrawal stays while
        a row it withdraws does (written after it, that row would otherwise come back)."""
        if self.retention_days is None:
            return 0
        now = time.time() if now is None else now
        # A day short of the triggers' floor: a clock ahead of the database's must not make a
        # borderline row abort the whole prune (at the smallest retention allowed).
        floor = records_db.MIN_RETENTION_DAYS + 1
        cutoff = now - max(self.retention_days, floor) * SECONDS_PER_DAY
        live_withdrawn = sa.exists().where(withdraws())
        try:
            with self._sample_lock, self._engine.begin() as connection:
                touched = sample_summaries.samples_touched_before(connection, cutoff)
                deleted = sum(
                    connection.execute(statement).rowcount
                    for statement in (
                        DECISIONS.delete().where(DECISIONS.c.time < cutoff),
                        PREDICTIONS.delete().where(PREDICTIONS.c.time < cutoff),
                        WITHDRAWALS.delete().where(WITHDRAWALS.c.time < cutoff, ~live_withdrawn),
                        SIGN_OFFS.delete().where(SIGN_OFFS.c.time < cutoff),
                        AUDIT.delete().where(AUDIT.c.time < cutoff),
                    )
                )
                for sample_id in sorted(touched):
                    lock_sample(connection, sample_id)
                    sample_summaries.refresh(connection, sample_id)
                    scoring_outcomes.refresh(connection, sample_id)
                return deleted
        except SQLAlchemyError as error:
            raise unavailable(error) from error

    def prune_if_due(self) -> None:
        """Prune at most hourly, from whichever write comes first; a failure waits its turn.
        A role that may not delete leaves it to the owner's (python -m app.records prune)."""
        if not self._may_prune:
            return
        now = time.time()
        with self._prune_lock:
            if now - self._pruned_at < PRUNE_EVERY_SECONDS:
                return
            self._pruned_at = now
        try:
            self.prune(now)
        except RecordsUnavailableError as error:
            log.warning("old sample records were not pruned: %s", error)

    @property
    def engine(self) -> Engine:
        """For the readers of the same records (app/records/performance_read.py)."""
        return self._engine

    def close(self) -> None:
        """Write what the prediction writer holds, then let the database go."""
        self.predictions.close()
        self._engine.dispose()
