"""A prediction's one record: its audit row and, when it joins a sample, its cell there.

Both are written in one transaction, by the one writer (app/records/prediction_records.py),
from one journal line: a record either is in the database whole or not at all. This module is
the only one that inserts into `predictions` and `sample_predictions`
(tests/app/test_layout.py keeps it so).

Within a sample an image is one cell, known by its sha256: scoring the same bytes again is
recorded as a repeat of the first (`repeat_of`). A signed-off sample takes no new cell: such a
record's audit row says `not_answered` (its request is answered 409) and no cell is written.
The audit rows are keyed by the server's request id and the image's place in the request, so a
replayed or retried row never doubles one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from app.core.domain.predictions import Prediction
from app.core.identities import ANONYMOUS, Identity
from app.records import records_db, sample_summaries, scoring_outcomes, sign_off
from app.records.audit_rows import AUDIT_FIELDS, AuditRecord
from app.records.sample_reads import cells
from app.records.sign_off import SampleStateError

AUDIT = records_db.predictions
CELLS = records_db.sample_predictions


@dataclass(frozen=True)
class SampleEntry:
    """The sample a request's images join, and whose upload they are."""

    sample_id: str
    uploader: Identity = ANONYMOUS


@dataclass(frozen=True)
class PredictionRecord(AuditRecord):
    """One answered image: the audit row's fields, then (with a sample id) the cell's."""

    sample_id: str | None = None
    state: str = ""
    assessable: bool = False
    threshold: float | None = None
    tta: bool | None = None
    warnings: str = ""
    """The quality warnings' codes, ";"-joined."""
    uploader: str = ""
    uploader_source: str = "unrecorded"
    mark: bool = False
    """Marks a kept row `not_answered` (its request was refused after all), not a row of its
    own: written over the row with the same key, whenever that comes."""


CellResult = str | None | SampleStateError
"""What the transaction made of a record's cell: the request id it repeats (None: a first
scoring, or no sample), or why the sample refused it."""


def records_of(
    predictions: Iterable[Prediction],
    sample: SampleEntry | None,
    *,
    answered: bool = True,
    client_request_id: str = "",
) -> list[PredictionRecord]:
    """The records of a request's answered images (hashes and results, never the image);
    not `answered` (the client left before its answer), they join no sample."""
    now = time.time()
    joins = sample if answered else None
    return [
        PredictionRecord(
            time=now,
            request_id=prediction.request_id,
            image_sha256=prediction.image_sha256 or "",
            model_id=prediction.model.id,
            model_version=prediction.model.version,
            probability_all=prediction.probability_all,
            # kept where the answer's label is null (not assessable) too
            label=prediction.side_of_threshold,
            latency_ms=prediction.timings_ms.total,
            client_request_id=client_request_id,
            outcome=records_db.ANSWERED if answered else records_db.NOT_ANSWERED,
            sample_id=None if joins is None else joins.sample_id,
            state=prediction.state,
            assessable=prediction.assessable,
            threshold=prediction.threshold,
            tta=prediction.tta,
            warnings=";".join(warning.code for warning in prediction.warnings),
            uploader=ANONYMOUS.name if joins is None else joins.uploader.name,
            uploader_source=ANONYMOUS.source if joins is None else joins.uploader.source,
        )
        for prediction in predictions
    ]


def joined(
    predictions: Sequence[Prediction], sample_id: str, repeats: Sequence[str | None] | None
) -> None:
    """The answers say which sample they joined, and which earlier scoring each repeats."""
    repeats = repeats or [None] * len(predictions)
    for prediction, repeat_of in zip(predictions, repeats, strict=True):
        prediction.sample_id = sample_id
        prediction.repeat_of = repeat_of


def not_answered(record: PredictionRecord, *, mark: bool = False) -> PredictionRecord:
    """The record of a request refused after all: its audit row alone, saying so."""
    return replace(record, sample_id=None, outcome=records_db.NOT_ANSWERED, mark=mark)


def replayed(row: Mapping[str, Any]) -> PredictionRecord:
    """A journal line at start-up. A record that joins a sample is answered only once it is
    committed, so one still in the journal is in the database already (its key skips it) or
    was never answered: its audit row alone, saying so, never its cell."""
    record = PredictionRecord(**row)
    return not_answered(record) if record.sample_id is not None else record


def _dialect_insert(connection: Connection) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into the audit with the engine's own ON CONFLICT clause."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(AUDIT)
    return sqlite.insert(AUDIT)


def insert_once(connection: Connection) -> Insert:
    """INSERT that skips rows whose (request_id, item) is already there, on either engine."""
    insert = _dialect_insert(connection)
    return insert.on_conflict_do_nothing(index_elements=["request_id", "item"])


def mark_not_answered(connection: Connection) -> Insert:
    """INSERT of a row whose request was not answered after all: a row already there with the
    same key is marked so (never the other way round: a replayed answered row changes
    nothing)."""
    insert = _dialect_insert(connection)
    return insert.on_conflict_do_update(
        index_elements=["request_id", "item"], set_={"outcome": insert.excluded.outcome}
    )


def write_audit_rows(connection: Connection, records: Sequence[AuditRecord]) -> None:
    """Audit rows in their order: each row once, then the marks (two statements, so that a
    row and its mark never meet in one)."""
    rows = [
        {name: getattr(record, name) for name in AUDIT_FIELDS}
        for record in records
        if not getattr(record, "mark", False)
    ]
    marks = {
        (record.request_id, record.item): {name: getattr(record, name) for name in AUDIT_FIELDS}
        for record in records
        if getattr(record, "mark", False)
    }
    if rows:
        connection.execute(insert_once(connection), rows)
    if marks:
        connection.execute(mark_not_answered(connection), list(marks.values()))


def _cell_row(record: PredictionRecord, repeat_of: str | None) -> dict[str, object]:
    return {
        "time": record.time,
        "sample_id": record.sample_id,
        "request_id": record.request_id,
        "image_sha256": record.image_sha256,
        "model_id": record.model_id,
        "model_version": record.model_version,
        "probability_all": record.probability_all,
        "label": record.label,
        "state": record.state,
        "assessable": int(record.assessable),
        "client_request_id": record.client_request_id,
        "repeat_of": repeat_of,
        "threshold": record.threshold,
        "tta": None if record.tta is None else int(record.tta),
        "warnings": record.warnings,
        "uploader": record.uploader,
        "uploader_source": record.uploader_source,
    }


def write(
    connection: Connection, records: Sequence[PredictionRecord], *, audit: bool = True
) -> list[CellResult]:
    """Every record's audit row (unless the audit is off) and cell, in this one transaction,
    the samples' turns taken first (in order, so that two writers never wait on each other);
    what became of each record's cell, in order."""
    joined = sorted({record.sample_id for record in records if record.sample_id is not None})
    refusals: dict[str, SampleStateError | None] = {}
    firsts: dict[str, dict[str, str]] = {}
    for sample_id in joined:
        records_db.lock_sample(connection, sample_id)
        try:
            sign_off.refuse_once_signed(connection, sample_id, "a new cell")
            refusals[sample_id] = None
            firsts[sample_id] = {c.image_sha256: c.request_id for c in cells(connection, sample_id)}
        except SampleStateError as refused:
            refusals[sample_id] = refused
    results: list[CellResult] = []
    audit_rows: list[PredictionRecord] = []
    cell_rows: list[dict[str, object]] = []
    for record in records:
        target = record.sample_id
        refusal = None if target is None else refusals[target]
        if target is None or refusal is not None:
            results.append(refusal)
            audit_rows.append(record if refusal is None else not_answered(record))
            continue
        first = firsts[target]
        repeat_of = first.get(record.image_sha256)
        first.setdefault(record.image_sha256, record.request_id)
        results.append(repeat_of)
        audit_rows.append(record)
        cell_rows.append(_cell_row(record, repeat_of))
    if audit:
        write_audit_rows(connection, audit_rows)
    if cell_rows:
        connection.execute(CELLS.insert(), cell_rows)
        for sample_id in sorted({str(row["sample_id"]) for row in cell_rows}):
            sample_summaries.refresh(connection, sample_id)
            scoring_outcomes.refresh(connection, sample_id)
    return results


def as_line(record: PredictionRecord) -> dict[str, object]:
    """The record as the journal holds it."""
    return asdict(record)
