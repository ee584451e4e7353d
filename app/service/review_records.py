"""Samples and the reviewers' decisions on them, append only, beside the prediction audit.

Two tables in the audit log's SQLite file (its own connection, so the audit module stays as it
is): which scored images belong to which sample, and every decision a reviewer made on one.
Neither holds an image or a file name, only the image's sha256 and the request that scored it.
Rows are never updated or deleted here; a changed decision is a new row, the latest one counts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from app.core.answer_states import AnswerState
from app.schemas import (
    Prediction,
    ReviewDecision,
    ReviewRecord,
    ReviewRequest,
    SampleCounts,
    SamplePrediction,
    SampleReport,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sample_predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    sample_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    probability_all REAL NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    assessable INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sample_predictions_sample ON sample_predictions (sample_id);
CREATE TABLE IF NOT EXISTS review_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    sample_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    decision TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_decisions_sample ON review_decisions (sample_id);
CREATE TRIGGER IF NOT EXISTS review_decisions_append_only_update
    BEFORE UPDATE ON review_decisions BEGIN SELECT RAISE(ABORT, 'append only'); END;
CREATE TRIGGER IF NOT EXISTS review_decisions_append_only_delete
    BEFORE DELETE ON review_decisions BEGIN SELECT RAISE(ABORT, 'append only'); END;
"""
PREDICTION_COLUMNS = (
    "time, request_id, image_sha256, model_id, model_version, probability_all, label, state, "
    "assessable"
)
DECISION_COLUMNS = "id, time, sample_id, request_id, image_sha256, decision, reviewer, comment"


class UnknownPredictionError(LookupError):
    """A decision names an image that was not scored for that sample."""


class ReviewRecords:
    def __init__(self, path: Path | str) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(SCHEMA)

    def add_predictions(self, sample_id: str, predictions: Sequence[Prediction]) -> None:
        now = time.time()
        rows = [
            (
                now,
                sample_id,
                p.request_id,
                p.image_sha256 or "",
                p.model.id,
                p.model.version,
                p.probability_all,
                p.label,
                p.state,
                int(p.assessable),
            )
            for p in predictions
        ]
        with self._lock:
            self._connection.executemany(
                "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, "
                "model_id, model_version, probability_all, label, state, assessable) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def add_decision(self, review: ReviewRequest) -> ReviewRecord:
        """Append one decision; refused unless that image was scored for that sample."""
        with self._lock:
            known = self._connection.execute(
                "SELECT 1 FROM sample_predictions WHERE sample_id = ? AND request_id = ? "
                "AND image_sha256 = ? LIMIT 1",
                (review.sample_id, review.request_id, review.image_sha256),
            ).fetchone()
            if known is None:
                raise UnknownPredictionError(
                    "no prediction with this request_id and image_sha256 in this sample"
                )
            now = time.time()
            cursor = self._connection.execute(
                "INSERT INTO review_decisions (time, sample_id, request_id, image_sha256, "
                "decision, reviewer, comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    now,
                    review.sample_id,
                    review.request_id,
                    review.image_sha256,
                    review.decision,
                    review.reviewer,
                    review.comment,
                ),
            )
        return ReviewRecord(id=int(cursor.lastrowid or 0), time=now, **review.model_dump())

    def sample(self, sample_id: str) -> SampleReport | None:
        with self._lock:
            predicted = self._connection.execute(
                f"SELECT {PREDICTION_COLUMNS} FROM sample_predictions WHERE sample_id = ? "
                "ORDER BY id",
                (sample_id,),
            ).fetchall()
            decided = self._connection.execute(
                f"SELECT {DECISION_COLUMNS} FROM review_decisions WHERE sample_id = ? ORDER BY id",
                (sample_id,),
            ).fetchall()
        if not predicted:
            return None
        predictions = [
            SamplePrediction(
                time=row[0],
                request_id=row[1],
                image_sha256=row[2],
                model_id=row[3],
                model_version=row[4],
                probability_all=row[5],
                label=row[6],
                state=row[7],
                assessable=bool(row[8]),
            )
            for row in predicted
        ]
        decisions = [
            ReviewRecord(
                id=row[0],
                time=row[1],
                sample_id=row[2],
                request_id=row[3],
                image_sha256=row[4],
                decision=row[5],
                reviewer=row[6],
                comment=row[7],
            )
            for row in decided
        ]
        return SampleReport(
            sample_id=sample_id,
            predictions=predictions,
            decisions=decisions,
            counts=sample_counts(predictions, decisions),
        )

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def sample_counts(
    predictions: Sequence[SamplePrediction], decisions: Sequence[ReviewRecord]
) -> SampleCounts:
    """Counts per answer state, and per reviewer decision where the latest one counts."""
    by_state: Counter[str] = Counter(p.state for p in predictions)
    latest = {(d.request_id, d.image_sha256): d.decision for d in decisions}
    by_decision: Counter[str] = Counter(latest.values())
    assessable = sum(1 for p in predictions if p.assessable)
    all_like = by_state["suggests_all"]
    return SampleCounts(
        images=len(predictions),
        by_state={state: by_state[state] for state in get_args(AnswerState)},
        decided=len(latest),
        by_decision={decision: by_decision[decision] for decision in get_args(ReviewDecision)},
        all_like_share_of_assessable=all_like / assessable if assessable else None,
    )
