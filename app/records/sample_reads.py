"""Reading a sample back: its cells (each image once, withdrawn uploads left out), its
decisions, its withdrawals, the counts and where it is in its life cycle, from the records'
rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from app.core.answer_states import AnswerState
from app.core.domain.reviews import ReviewDecision, ReviewRecord
from app.core.domain.samples import SampleCounts, SamplePrediction, SampleReport, SampleWithdrawal
from app.records import records_db, sign_off
from app.records.withdrawals import WITHDRAWALS, withdrawn

PREDICTIONS = records_db.sample_predictions
DECISIONS = records_db.review_decisions


def utc(seconds: float) -> datetime:
    """A record's time (stored as seconds since the epoch) as the API answers it."""
    return datetime.fromtimestamp(seconds, UTC)


def cells(connection: Connection, sample_id: str) -> list[SamplePrediction]:
    """The sample's cells: each image once (its first live scoring), withdrawn rows left out."""
    rows = connection.execute(
        sa.select(PREDICTIONS)
        .where(PREDICTIONS.c.sample_id == sample_id, ~withdrawn())
        .order_by(PREDICTIONS.c.id)
    ).all()
    found: dict[str, SamplePrediction] = {}
    for row in rows:
        if row.image_sha256 in found:
            continue
        found[row.image_sha256] = SamplePrediction(
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
            uploader=row.uploader,
            uploader_source=row.uploader_source,
        )
    return list(found.values())


def decision_record(row: Row[Any], *, durable: bool) -> ReviewRecord:
    return ReviewRecord(
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
        durable=durable,
    )


def decisions(connection: Connection, sample_id: str, *, durable: bool) -> list[ReviewRecord]:
    rows = connection.execute(
        sa.select(DECISIONS).where(DECISIONS.c.sample_id == sample_id).order_by(DECISIONS.c.id)
    ).all()
    return [decision_record(row, durable=durable) for row in rows]


def sample_counts(
    predictions: Sequence[SamplePrediction], decisions: Sequence[ReviewRecord]
) -> SampleCounts:
    """Counts per answer state, and per reviewer decision where the latest one counts (one
    image is one cell: decisions are keyed by its sha256)."""
    shas = {p.image_sha256 for p in predictions}
    by_state: Counter[str] = Counter(p.state for p in predictions)
    latest = {d.image_sha256: d.decision for d in decisions if d.image_sha256 in shas}
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


def withdrawals(connection: Connection, sample_id: str) -> list[SampleWithdrawal]:
    rows = connection.execute(
        sa.select(WITHDRAWALS)
        .where(WITHDRAWALS.c.sample_id == sample_id)
        .order_by(WITHDRAWALS.c.id)
    ).all()
    return [
        SampleWithdrawal(
            client_request_id=row.client_request_id,
            time=utc(row.time),
            uploader=row.uploader,
            uploader_source=row.uploader_source,
        )
        for row in rows
    ]


def sample_report(connection: Connection, sample_id: str, *, durable: bool) -> SampleReport | None:
    """The sample as recorded, with its status, sign-offs and amendments; None when no record
    names it. A sample whose every cell was withdrawn is still one: no cell, its withdrawals."""
    predictions = cells(connection, sample_id)
    withdrawn_uploads = withdrawals(connection, sample_id)
    if not predictions and not withdrawn_uploads:  # a row that is not live is withdrawn
        return None
    decided = decisions(connection, sample_id, durable=durable)
    report = SampleReport(
        sample_id=sample_id,
        predictions=predictions,
        decisions=decided,
        withdrawals=withdrawn_uploads,
        counts=sample_counts(predictions, decided),
        durable=durable,
    )
    sign_off.annotate(connection, report)
    return report
