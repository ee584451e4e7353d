"""Samples and the reviewers' decisions on them, in the records' one database.

The same database as the prediction audit (app/records/records_db.py: a SQLite file by default,
PostgreSQL by LEUKOLENS_DATABASE_URL), so that every replica of a deployment reads and writes the
same samples: predictions through one replica and decisions through another make one sample.
Which scored images belong to which sample, every decision a reviewer made, and the requests a
page withdrew (a cancelled upload). No row holds an image or a file name, only the image's sha256
and the request that scored it. Rows are never updated; a changed decision is a new row (the
latest counts), a withdrawal is a row of its own. Rows older than the retention
(LEUKOLENS_RECORDS_RETENTION_DAYS) are deleted, at start-up and then hourly; the database's
triggers refuse to delete any younger than 30 days. Each decision says where its reviewer's
name came from (`reviewer_source`): typed by the client, or the deployment's authenticated user.

Within a sample an image is one cell, known by its sha256: scoring the same bytes again is
recorded as a repeat of the first (`repeat_of`) and counted once everywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from app.core.answer_states import AnswerState
from app.records import records_db, sign_off
from app.records.records_errors import RecordsUnavailableError, unavailable
from app.schemas import (
    Prediction,
    ReviewDecision,
    ReviewerSource,
    ReviewRecord,
    ReviewRequest,
    SampleCounts,
    SamplePrediction,
    SampleReport,
    SampleSummary,
    SampleWithdrawal,
)

log = logging.getLogger("leukolens.records")

PREDICTIONS = records_db.sample_predictions
DECISIONS = records_db.review_decisions
WITHDRAWALS = records_db.sample_withdrawals
SIGN_OFFS = records_db.sample_sign_offs
__all__ = ["RecordsUnavailableError", "ReviewRecords", "UnknownPredictionError"]
SECONDS_PER_DAY = 86_400.0
PRUNE_EVERY_SECONDS = 3_600.0


class UnknownPredictionError(LookupError):
    """A decision names an image that was not scored for that sample."""


class ReviewRecords:
    def __init__(
        self,
        database: Path | str,
        *,
        busy_timeout_seconds: float = 10.0,
        retention_days: float | None = None,
    ) -> None:
        """`database`: a SQLite file, `:memory:`, or a SQLAlchemy URL (postgresql+psycopg://).
        `retention_days`: rows older than this are pruned (at least the triggers' floor,
        records_db.MIN_RETENTION_DAYS); None keeps every row."""
        if retention_days is not None and retention_days < records_db.MIN_RETENTION_DAYS:
            raise ValueError(
                f"records are kept at least {records_db.MIN_RETENTION_DAYS} days, "
                f"not {retention_days}"
            )
        if database == ":memory:":
            # One connection shared by every thread: the records live as long as the process.
            self._engine = sa.create_engine(
                "sqlite://",
                connect_args={"check_same_thread": False},
                poolclass=StaticPool,
            )
        else:
            if isinstance(database, Path):
                database.parent.mkdir(parents=True, exist_ok=True)
            url = records_db.sqlite_url(database) if isinstance(database, Path) else database
            self._engine = records_db.create_engine(url, busy_timeout_seconds=busy_timeout_seconds)
        records_db.migrate(self._engine)
        self.sign_offs = sign_off.SignOffs(self._engine)
        self._sample_lock = threading.Lock()
        self.retention_days = retention_days
        self._pruned_at = 0.0
        self._prune_lock = threading.Lock()
        self.prune_if_due()

    def add_predictions(
        self, sample_id: str, predictions: Sequence[Prediction], client_request_id: str = ""
    ) -> None:
        """Record the sample's scored images; an image the sample already holds is recorded as
        a repeat of it, and the prediction says so (`repeat_of`)."""
        try:
            self._add_predictions(sample_id, predictions, client_request_id)
        except SQLAlchemyError as error:
            raise unavailable(error) from error
        self.prune_if_due()

    def _add_predictions(
        self, sample_id: str, predictions: Sequence[Prediction], client_request_id: str
    ) -> None:
        now = time.time()
        # One writer per sample at a time, so that two uploads of the same bytes cannot both be
        # taken for the first: a lock in this process, and on PostgreSQL one across replicas.
        with self._sample_lock, self._engine.begin() as connection:
            sign_off.refuse_once_signed(connection, sample_id, "a new cell")  # takes the lock
            first = self._first_requests(connection, sample_id)
            rows = []
            for prediction in predictions:
                sha = prediction.image_sha256 or ""
                prediction.sample_id = sample_id
                prediction.repeat_of = first.get(sha)
                first.setdefault(sha, prediction.request_id)
                rows.append(
                    {
                        "time": now,
                        "sample_id": sample_id,
                        "request_id": prediction.request_id,
                        "image_sha256": sha,
                        "model_id": prediction.model.id,
                        "model_version": prediction.model.version,
                        "probability_all": prediction.probability_all,
                        # kept where the answer's label is null (not assessable) too
                        "label": prediction.side_of_threshold,
                        "state": prediction.state,
                        "assessable": int(prediction.assessable),
                        "client_request_id": client_request_id,
                        "repeat_of": prediction.repeat_of,
                        "threshold": prediction.threshold,
                        "tta": int(prediction.tta),
                        "warnings": ";".join(w.code for w in prediction.warnings),
                    }
                )
            if rows:
                connection.execute(PREDICTIONS.insert(), rows)

    def withdraw(self, sample_id: str, client_request_id: str) -> None:
        """The page dropped the answers of this request (a cancelled upload): they no longer
        belong to the sample, whenever they are written. The audit keeps them."""
        try:
            with self._engine.begin() as connection:
                sign_off.refuse_once_signed(connection, sample_id, "withdrawing an upload")
                connection.execute(
                    WITHDRAWALS.insert(),
                    {
                        "time": time.time(),
                        "sample_id": sample_id,
                        "client_request_id": client_request_id,
                    },
                )
        except SQLAlchemyError as error:
            raise unavailable(error) from error

    def add_decision(
        self, review: ReviewRequest, *, reviewer_source: ReviewerSource = "free_text"
    ) -> ReviewRecord:
        """Append one decision; refused unless that image was scored for that sample.
        `reviewer_source` says whether the name was typed or authenticated."""
        if review.reviewer is None:
            raise ValueError("a decision is recorded under a reviewer's name")
        try:
            record = self._add_decision(review, reviewer_source)
        except SQLAlchemyError as error:
            raise unavailable(error) from error
        self.prune_if_due()
        return record

    def _add_decision(self, review: ReviewRequest, reviewer_source: ReviewerSource) -> ReviewRecord:
        now = time.time()
        with self._engine.begin() as connection:
            sign_off.refuse_decision_unless_amendment(connection, review)
            known = connection.execute(
                sa.select(PREDICTIONS.c.id)
                .where(
                    PREDICTIONS.c.sample_id == review.sample_id,
                    PREDICTIONS.c.request_id == review.request_id,
                    PREDICTIONS.c.image_sha256 == review.image_sha256,
                )
                .limit(1)
            ).first()
            if known is None:
                raise UnknownPredictionError(
                    "no prediction with this request_id and image_sha256 in this sample"
                )
            fields = {**review.model_dump(), "reviewer_source": reviewer_source}
            result = connection.execute(
                DECISIONS.insert().returning(DECISIONS.c.id), {"time": now, **fields}
            )
            record_id = int(result.scalar_one())
        return ReviewRecord(id=record_id, time=utc(now), **fields)

    def sample(self, sample_id: str) -> SampleReport | None:
        """The sample as recorded; None when no record names it. A sample whose every cell
        was withdrawn is still one: no cell, and its withdrawals."""
        with self._engine.connect() as connection:
            predictions = self._cells(connection, sample_id)
            decided, withdrawn = (
                connection.execute(
                    sa.select(table).where(table.c.sample_id == sample_id).order_by(table.c.id)
                ).all()
                for table in (DECISIONS, WITHDRAWALS)
            )
            scored = connection.execute(
                sa.select(PREDICTIONS.c.id).where(PREDICTIONS.c.sample_id == sample_id).limit(1)
            ).first()
            if scored is None and not withdrawn:
                return None
            decisions = [
                ReviewRecord(
                    id=row.id,
                    time=utc(row.time),
                    sample_id=row.sample_id,
                    request_id=row.request_id,
                    image_sha256=row.image_sha256,
                    decision=row.decision,
                    reviewer=row.reviewer,
                    comment=row.comment,
                    reviewer_source=row.reviewer_source,
                    amendment=row.amendment,
                )
                for row in decided
            ]
            report = SampleReport(
                sample_id=sample_id,
                predictions=predictions,
                decisions=decisions,
                withdrawals=[
                    SampleWithdrawal(client_request_id=w.client_request_id, time=utc(w.time))
                    for w in withdrawn
                ],
                counts=sample_counts(predictions, decisions),
            )
            sign_off.annotate(connection, report)
        return report

    def samples(self, *, limit: int, offset: int = 0) -> tuple[list[SampleSummary], int]:
        """A page of samples, the most recently changed first, and how many there are. Only
        live cells count, and only decisions on them."""
        with self._engine.connect() as connection:
            scored = connection.execute(
                sa.select(
                    PREDICTIONS.c.sample_id,
                    PREDICTIONS.c.image_sha256,
                    sa.func.max(PREDICTIONS.c.time),
                )
                .where(~self._withdrawn_condition())
                .group_by(PREDICTIONS.c.sample_id, PREDICTIONS.c.image_sha256)
            ).all()
            decided = connection.execute(
                sa.select(
                    DECISIONS.c.sample_id, DECISIONS.c.image_sha256, sa.func.max(DECISIONS.c.time)
                ).group_by(DECISIONS.c.sample_id, DECISIONS.c.image_sha256)
            ).all()
        cells: dict[str, set[str]] = defaultdict(set)
        last: dict[str, float] = defaultdict(float)
        for sample_id, sha, when in scored:
            cells[sample_id].add(sha)
            last[sample_id] = max(last[sample_id], when)
        reviewed: Counter[str] = Counter()
        for sample_id, sha, when in decided:
            if sha in cells.get(sample_id, ()):
                reviewed[sample_id] += 1
                last[sample_id] = max(last[sample_id], when)
        summaries = [
            SampleSummary(
                sample_id=sample_id,
                cells=len(shas),
                reviewed=reviewed[sample_id],
                last_change=utc(last[sample_id]),
            )
            for sample_id, shas in cells.items()
        ]
        summaries.sort(key=lambda s: (s.last_change, s.sample_id), reverse=True)
        return summaries[offset : offset + limit], len(summaries)

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
        live_withdrawn = sa.exists().where(
            PREDICTIONS.c.sample_id == WITHDRAWALS.c.sample_id,
            PREDICTIONS.c.client_request_id == WITHDRAWALS.c.client_request_id,
        )
        try:
            with self._engine.begin() as connection:
                return sum(
                    connection.execute(statement).rowcount
                    for statement in (
                        DECISIONS.delete().where(DECISIONS.c.time < cutoff),
                        PREDICTIONS.delete().where(PREDICTIONS.c.time < cutoff),
                        WITHDRAWALS.delete().where(WITHDRAWALS.c.time < cutoff, ~live_withdrawn),
                        SIGN_OFFS.delete().where(SIGN_OFFS.c.time < cutoff),
                    )
                )
        except SQLAlchemyError as error:
            raise unavailable(error) from error

    def prune_if_due(self) -> None:
        """Prune at most hourly, from whichever write comes first; a failure waits its turn."""
        now = time.time()
        with self._prune_lock:
            if now - self._pruned_at < PRUNE_EVERY_SECONDS:
                return
            self._pruned_at = now
        try:
            self.prune(now)
        except RecordsUnavailableError as error:
            log.warning("old sample records were not pruned: %s", error)

    def close(self) -> None:
        self._engine.dispose()

    def _withdrawn_condition(self) -> sa.ColumnElement[bool]:
        return sa.exists().where(
            WITHDRAWALS.c.sample_id == PREDICTIONS.c.sample_id,
            WITHDRAWALS.c.client_request_id == PREDICTIONS.c.client_request_id,
            PREDICTIONS.c.client_request_id != "",
        )

    def _first_requests(self, connection: Connection, sample_id: str) -> dict[str, str]:
        """sha256 -> the request that first scored it, among the sample's live cells."""
        return {cell.image_sha256: cell.request_id for cell in self._cells(connection, sample_id)}

    def _cells(self, connection: Connection, sample_id: str) -> list[SamplePrediction]:
        """The sample's cells: each image once (its first scoring), withdrawn requests left out."""
        rows = connection.execute(
            sa.select(PREDICTIONS)
            .where(PREDICTIONS.c.sample_id == sample_id, ~self._withdrawn_condition())
            .order_by(PREDICTIONS.c.id)
        ).all()
        cells: dict[str, SamplePrediction] = {}
        for row in rows:
            if row.image_sha256 in cells:
                continue
            cells[row.image_sha256] = SamplePrediction(
                time=utc(row.time),
                request_id=row.request_id,
                image_sha256=row.image_sha256,
                model_id=row.model_id,
                model_version=row.model_version,
                probability_all=row.probability_all,
                label=row.label if row.assessable else None,
                state=row.state,
                assessable=bool(row.assessable),
                threshold=row.threshold,
                tta=None if row.tta is None else bool(row.tta),
                warnings=[code for code in row.warnings.split(";") if code],
            )
        return list(cells.values())


def utc(seconds: float) -> datetime:
    """A record's time (stored as seconds since the epoch) as the API answers it."""
    return datetime.fromtimestamp(seconds, UTC)


def sample_counts(
    predictions: Sequence[SamplePrediction], decisions: Sequence[ReviewRecord]
) -> SampleCounts:
    """Counts per answer state, and per reviewer decision where the latest one counts (one
    image is one cell: decisions are keyed by its sha256)."""
    cells = {p.image_sha256 for p in predictions}
    by_state: Counter[str] = Counter(p.state for p in predictions)
    latest = {d.image_sha256: d.decision for d in decisions if d.image_sha256 in cells}
    by_decision: Counter[str] = Counter(latest.values())
    assessable = sum(1 for p in predictions if p.assessable)
    all_like = by_state["suggests_all"]
    return SampleCounts(
        images=len(predictions),
        by_state={state: by_state[state] for state in get_args(AnswerState)},
        decided=len(latest),
        by_decision={decision: by_decision[decision] for decision in get_args(ReviewDecision)},
        model_suggested_all_like_share=all_like / assessable if assessable else None,
    )
