"""A prediction's one record: its audit row and its cell, in one transaction, on SQLite and on
PostgreSQL."""

import time
from dataclasses import asdict

import pytest
import sqlalchemy as sa

from app.core.domain.predictions import Prediction
from app.core.identities import Identity
from app.records import prediction_rows, records_db
from app.records.prediction_rows import PredictionRecord, SampleEntry, records_of
from app.records.sign_off import SampleStateError
from tests.app.records.test_review_records import prediction as scored

SHA_A, SHA_B = "a" * 64, "b" * 64


def prediction(sha: str, request_id: str = "r1") -> Prediction:
    return scored(sha, 0.9, "suggests_all", request_id=request_id)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = records_db.sqlite_url(tmp_path / "records.sqlite3")
    else:
        url = request.getfixturevalue("postgres_url")
    engine = records_db.create_engine(url)
    records_db.migrate(engine)
    yield engine
    engine.dispose()


def keyed(records: list[PredictionRecord]) -> list[PredictionRecord]:
    """As the writer keys them: each image's place in its request."""
    from dataclasses import replace

    return [replace(record, item=index) for index, record in enumerate(records)]


def table_rows(engine, table: sa.Table, *columns: str) -> list[tuple]:
    with engine.connect() as connection:
        query = sa.select(*(table.c[name] for name in columns)).order_by(table.c.id)
        return [tuple(row) for row in connection.execute(query)]


def test_a_record_is_its_audit_row_and_its_cell_in_one_transaction(engine):
    owner = Identity("alice", "reviewer_key")
    records = keyed(
        records_of(
            [prediction(SHA_A), prediction(SHA_A), prediction(SHA_B)],
            SampleEntry("S-1", owner),
            client_request_id="upload-1",
        )
    )
    with engine.begin() as connection:
        results = prediction_rows.write(connection, records)
    assert results == [None, "r1", None]  # the same bytes twice: the second repeats the first
    audit = table_rows(engine, records_db.predictions, "request_id", "item", "outcome")
    assert audit == [("r1", 0, "answered"), ("r1", 1, "answered"), ("r1", 2, "answered")]
    cells = table_rows(
        engine,
        records_db.sample_predictions,
        "sample_id",
        "image_sha256",
        "repeat_of",
        "client_request_id",
        "uploader",
        "uploader_source",
    )
    assert cells == [
        ("S-1", SHA_A, None, "upload-1", "alice", "reviewer_key"),
        ("S-1", SHA_A, "r1", "upload-1", "alice", "reviewer_key"),
        ("S-1", SHA_B, None, "upload-1", "alice", "reviewer_key"),
    ]
    with engine.connect() as connection:
        summary = connection.execute(sa.select(records_db.sample_summaries.c.cells)).scalar()
    assert summary == 2


def test_a_failed_transaction_leaves_neither_row(engine):
    records = keyed(records_of([prediction(SHA_A)], SampleEntry("S-1")))

    def written_then_failed() -> None:
        with engine.begin() as connection:
            prediction_rows.write(connection, records)
            raise RuntimeError("the commit never happens")

    with pytest.raises(RuntimeError, match="commit never happens"):
        written_then_failed()
    assert table_rows(engine, records_db.predictions, "id") == []
    assert table_rows(engine, records_db.sample_predictions, "id") == []


def test_a_signed_off_sample_takes_no_cell_and_the_audit_says_not_answered(engine):
    with engine.begin() as connection:
        prediction_rows.write(
            connection, keyed(records_of([prediction(SHA_A)], SampleEntry("S-1")))
        )
        connection.execute(
            records_db.sample_sign_offs.insert(),
            {
                "time": time.time(),
                "sample_id": "S-1",
                "signer": "Dr A",
                "signer_source": "free_text",
                "cells": 1,
                "undecided_cells": 1,
                "last_decision_id": 0,
                "content_sha256": "x",
                "rows_sha256": "{}",
            },
        )
    late = keyed(records_of([prediction(SHA_B, "r2")], SampleEntry("S-1")))
    plain = keyed(records_of([prediction(SHA_B, "r3")], None))
    with engine.begin() as connection:
        results = prediction_rows.write(connection, [*late, *plain])
    assert isinstance(results[0], SampleStateError)
    assert "a new cell would change it" in str(results[0])
    assert results[1] is None
    audit = table_rows(engine, records_db.predictions, "request_id", "outcome")
    assert audit == [("r1", "answered"), ("r2", "not_answered"), ("r3", "answered")]
    assert table_rows(engine, records_db.sample_predictions, "request_id") == [("r1",)]


def test_a_repeated_row_is_skipped_and_a_mark_is_written_over_it(engine):
    (record,) = keyed(records_of([prediction(SHA_A)], None))
    for _ in range(2):
        with engine.begin() as connection:
            prediction_rows.write_audit_rows(connection, [record, record])
    assert table_rows(engine, records_db.predictions, "outcome") == [("answered",)]
    with engine.begin() as connection:
        mark = prediction_rows.not_answered(record, mark=True)
        prediction_rows.write_audit_rows(connection, [mark, record])
    assert table_rows(engine, records_db.predictions, "outcome") == [("not_answered",)]


def test_with_the_audit_off_a_record_is_its_cell_alone(engine):
    records = keyed(records_of([prediction(SHA_A)], SampleEntry("S-1")))
    with engine.begin() as connection:
        prediction_rows.write(connection, records, audit=False)
    assert table_rows(engine, records_db.predictions, "id") == []
    assert table_rows(engine, records_db.sample_predictions, "request_id") == [("r1",)]


def test_a_replayed_line_that_joined_a_sample_is_its_audit_row_alone_not_answered():
    """Such a record is answered only once committed: still in the journal at start-up, it is
    in the database already (its key skips it) or was never answered."""
    (joining,) = records_of([prediction(SHA_A)], SampleEntry("S-1"))
    (plain,) = records_of([prediction(SHA_A)], None)
    replayed = prediction_rows.replayed(asdict(joining))
    assert (replayed.sample_id, replayed.outcome, replayed.mark) == (None, "not_answered", False)
    assert prediction_rows.replayed(asdict(plain)) == plain


def test_an_answer_its_client_left_is_recorded_not_answered_and_joins_no_sample():
    (record,) = records_of([prediction(SHA_A)], SampleEntry("S-1"), answered=False)
    assert (record.sample_id, record.outcome) == (None, "not_answered")
