import sqlite3

import pytest

from app.schemas import ModelRef, Prediction, ReviewRequest, Timings
from app.service.review_records import ReviewRecords, UnknownPredictionError

SHA_A = "a" * 64
SHA_B = "b" * 64


def prediction(sha, probability, state, assessable=True, request_id="r1"):
    return Prediction(
        label="ALL" if probability >= 0.5 else "HEM",
        probability_all=probability,
        threshold=0.5,
        model=ModelRef(id="m", version="1"),
        warnings=[],
        timings_ms=Timings(decode=0, preprocess=0, inference=0, total=0),
        request_id=request_id,
        image_sha256=sha,
        state=state,
        assessable=assessable,
    )


def review(sha, decision, **extra):
    fields = {
        "request_id": "r1",
        "image_sha256": sha,
        "sample_id": "S-1",
        "decision": decision,
        "reviewer": "Dr A",
    }
    return ReviewRequest(**{**fields, **extra})


@pytest.fixture
def records(tmp_path):
    store = ReviewRecords(tmp_path / "audit.sqlite3")
    yield store
    store.close()


def test_a_sample_holds_its_predictions_decisions_and_counts(records):
    records.add_predictions(
        "S-1",
        [
            prediction(SHA_A, 0.9, "suggests_all"),
            prediction(SHA_B, 0.1, "not_assessable", assessable=False),
        ],
    )
    records.add_predictions("S-2", [prediction("c" * 64, 0.2, "suggests_normal")])
    records.add_decision(review(SHA_A, "HEM", comment="looks normal"))
    records.add_decision(review(SHA_A, "ALL"))  # a correction: appended, the latest counts
    report = records.sample("S-1")
    assert [p.image_sha256 for p in report.predictions] == [SHA_A, SHA_B]
    assert [(d.decision, d.comment) for d in report.decisions] == [
        ("HEM", "looks normal"),
        ("ALL", ""),
    ]
    counts = report.counts
    assert counts.images == 2
    assert counts.by_state["suggests_all"] == 1
    assert counts.by_state["not_assessable"] == 1
    assert counts.decided == 1
    assert counts.by_decision == {"ALL": 1, "HEM": 0, "not_assessable": 0}
    assert counts.all_like_share_of_assessable == 1.0
    assert records.sample("S-3") is None


def test_a_decision_needs_a_prediction_of_that_sample(records):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    with pytest.raises(UnknownPredictionError):
        records.add_decision(review(SHA_B, "ALL"))
    with pytest.raises(UnknownPredictionError):
        records.add_decision(review(SHA_A, "ALL", sample_id="S-2"))


def test_decisions_are_append_only(records, tmp_path):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    connection = sqlite3.connect(tmp_path / "audit.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append only"):
        connection.execute("UPDATE review_decisions SET decision = 'HEM'")
    with pytest.raises(sqlite3.DatabaseError, match="append only"):
        connection.execute("DELETE FROM review_decisions")
    connection.close()


def test_records_survive_a_restart_beside_the_audit_table(tmp_path):
    from app.service.audit_log import AuditLog

    path = tmp_path / "audit.sqlite3"
    audit = AuditLog(path, 365)
    first = ReviewRecords(path)
    first.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    first.add_decision(review(SHA_A, "ALL"))
    first.close()
    again = ReviewRecords(path)
    assert [d.decision for d in again.sample("S-1").decisions] == ["ALL"]
    again.close()
    assert audit.rows() == []
    audit.close()
