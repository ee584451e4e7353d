import sqlite3

import pytest

from app.core.domain.predictions import ModelRef, Prediction, Timings
from app.core.domain.reviews import ReviewRequest
from app.records.review_records import ReviewRecords, UnknownPredictionError

SHA_A = "a" * 64
SHA_B = "b" * 64


def prediction(sha, probability, state, assessable=True, request_id="r1"):
    return Prediction(
        label=("ALL" if probability >= 0.5 else "HEM") if assessable else None,
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
    assert [p.label for p in report.predictions] == ["ALL", None]  # not assessable: no label
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
    assert counts.model_suggested_all_like_share == 1.0
    assert records.sample("S-3") is None


def test_a_decision_needs_a_prediction_of_that_sample(records):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    with pytest.raises(UnknownPredictionError):
        records.add_decision(review(SHA_B, "ALL"))
    with pytest.raises(UnknownPredictionError):
        records.add_decision(review(SHA_A, "ALL", sample_id="S-2"))


def test_decisions_are_append_only(records, tmp_path):  # as every records table is
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    connection = sqlite3.connect(tmp_path / "audit.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append only"):
        connection.execute("UPDATE review_decisions SET decision = 'HEM'")
    with pytest.raises(sqlite3.DatabaseError, match="append only"):
        connection.execute("DELETE FROM review_decisions")
    connection.close()


def test_a_cell_and_its_audit_row_are_one_record_that_survives_a_restart(tmp_path):
    path = tmp_path / "audit.sqlite3"
    first = ReviewRecords(path)
    first.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    first.add_decision(review(SHA_A, "ALL"))
    first.close()
    again = ReviewRecords(path)
    assert [d.decision for d in again.sample("S-1").decisions] == ["ALL"]
    assert [(row.request_id, row.image_sha256) for row in again.predictions.rows()] == [
        ("r1", SHA_A)
    ]
    again.close()
    without_audit = ReviewRecords(tmp_path / "other.sqlite3", audit=False)
    without_audit.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    assert len(without_audit.sample("S-1").predictions) == 1
    assert without_audit.predictions.rows() == []
    without_audit.close()


# The raw-sqlite3 layout the records had before they joined the one schema.
RECORD_FILE_LAYOUT = "\nCREATE TABLE IF NOT EXISTS sample_predictions (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    time REAL NOT NULL,\n    sample_id TEXT NOT NULL,\n    request_id TEXT NOT NULL,\n    image_sha256 TEXT NOT NULL,\n    model_id TEXT NOT NULL,\n    model_version TEXT NOT NULL,\n    probability_all REAL NOT NULL,\n    label TEXT NOT NULL,\n    state TEXT NOT NULL,\n    assessable INTEGER NOT NULL\n);\nCREATE INDEX IF NOT EXISTS sample_predictions_sample ON sample_predictions (sample_id);\nCREATE TABLE IF NOT EXISTS review_decisions (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    time REAL NOT NULL,\n    sample_id TEXT NOT NULL,\n    request_id TEXT NOT NULL,\n    image_sha256 TEXT NOT NULL,\n    decision TEXT NOT NULL,\n    reviewer TEXT NOT NULL,\n    comment TEXT NOT NULL\n);\nCREATE INDEX IF NOT EXISTS review_decisions_sample ON review_decisions (sample_id);\nCREATE TRIGGER IF NOT EXISTS review_decisions_append_only_update\n    BEFORE UPDATE ON review_decisions BEGIN SELECT RAISE(ABORT, 'append only'); END;\nCREATE TRIGGER IF NOT EXISTS review_decisions_append_only_delete\n    BEFORE DELETE ON review_decisions BEGIN SELECT RAISE(ABORT, 'append only'); END;\n"


def test_a_record_file_of_the_earlier_layout_is_adopted_with_every_row(tmp_path):
    path = tmp_path / "leukolens-audit.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(RECORD_FILE_LAYOUT)
    for n in range(30):
        connection.execute(
            "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, model_id, "
            "model_version, probability_all, label, state, assessable) "
            "VALUES (?, ?, ?, ?, 'm', '1', 0.9, 'ALL', 'suggests_all', 1)",
            (float(n), f"S-{n % 3}", f"r{n}", f"{n:064x}"),
        )
    for n in range(7):
        connection.execute(
            "INSERT INTO review_decisions (time, sample_id, request_id, image_sha256, decision, "
            "reviewer, comment) VALUES (?, ?, ?, ?, 'HEM', 'Dr A', 'old')",
            (100.0 + n, f"S-{n % 3}", f"r{n}", f"{n:064x}"),
        )
    connection.commit()
    connection.close()
    adopted = ReviewRecords(path)
    reports = [adopted.sample(f"S-{k}") for k in range(3)]
    assert sum(len(r.predictions) for r in reports) == 30
    assert sum(len(r.decisions) for r in reports) == 7
    assert {d.comment for r in reports for d in r.decisions} == {"old"}
    adopted.add_predictions("S-0", [prediction(SHA_A, 0.9, "suggests_all", request_id="new")])
    assert len(adopted.sample("S-0").predictions) == 11
    adopted.close()


def test_the_same_image_again_is_a_repeat_and_counts_once(records):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all", request_id="r1")])
    again = [
        prediction(SHA_A, 0.9, "suggests_all", request_id="r2"),
        prediction(SHA_B, 0.1, "suggests_normal", request_id="r2"),
    ]
    records.add_predictions("S-1", again)
    assert [p.repeat_of for p in again] == ["r1", None]
    report = records.sample("S-1")
    assert [(p.request_id, p.image_sha256) for p in report.predictions] == [
        ("r1", SHA_A),
        ("r2", SHA_B),
    ]
    assert report.counts.images == 2
    # a decision made through the repeat's request is a decision on the same cell
    records.add_decision(review(SHA_A, "HEM", request_id="r2"))
    records.add_decision(review(SHA_A, "ALL", request_id="r1"))
    report = records.sample("S-1")
    assert report.counts.decided == 1
    assert report.counts.by_decision["ALL"] == 1
    # in another sample the same image is a cell of its own
    other = [prediction(SHA_A, 0.9, "suggests_all", request_id="r3")]
    records.add_predictions("S-2", other)
    assert other[0].repeat_of is None


def test_samples_are_listed_newest_change_first_and_paged(records):
    for n in range(5):
        records.add_predictions(f"S-{n}", [prediction(f"{n:064x}", 0.9, "suggests_all")])
    records.add_decision(review(f"{1:064x}", "ALL", sample_id="S-1"))  # S-1 changed last
    first, total = records.samples(limit=2)
    assert total == 5
    assert [s.sample_id for s in first] == ["S-1", "S-4"]
    assert (first[0].cells, first[0].reviewed) == (1, 1)
    rest, _ = records.samples(limit=10, offset=2)
    assert [s.sample_id for s in rest] == ["S-3", "S-2", "S-0"]


def test_latest_decisions_are_what_adaptation_reads(records, tmp_path):
    from app.records.decisions_read import latest_decisions_in

    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "HEM"))
    records.add_decision(review(SHA_A, "ALL"))
    latest = latest_decisions_in(tmp_path / "audit.sqlite3")
    assert [(d.sample_id, d.decision) for d in latest] == [("S-1", "ALL")]
    with pytest.raises(LookupError, match="not found"):
        list(latest_decisions_in(tmp_path / "missing.sqlite3"))
    empty = tmp_path / "other.sqlite3"
    sqlite3.connect(empty).close()
    with pytest.raises(LookupError, match="no review records"):
        list(latest_decisions_in(empty))


def test_a_reopened_sample_carries_threshold_tta_and_warning_codes(records):
    from app.core.quality_checks import QualityWarning

    scored = prediction(SHA_A, 0.9, "suggests_all")
    scored.warnings = [QualityWarning(code="blurry", message="m")]
    scored.tta = True
    records.add_predictions("S-1", [scored])
    (cell,) = records.sample("S-1").predictions
    assert (cell.threshold, cell.tta, cell.warnings) == (0.5, True, ["blurry"])


def test_uploads_of_the_same_bytes_at_once_make_one_first_and_repeats(records):
    from concurrent.futures import ThreadPoolExecutor

    uploads = [[prediction(SHA_A, 0.9, "suggests_all", request_id=f"r{n}")] for n in range(12)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda batch: records.add_predictions("S-1", batch), uploads))
    firsts = [batch[0].request_id for batch in uploads if batch[0].repeat_of is None]
    assert len(firsts) == 1
    assert {batch[0].repeat_of for batch in uploads if batch[0].repeat_of} == set(firsts)


DAY = 86_400.0


def insert_old(path, days_ago, sample_id, sha, request_id, client_request_id=""):
    """A cell and its decision recorded `days_ago` (rows are append-only: inserted so)."""
    import time

    when = time.time() - days_ago * DAY
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, model_id, "
        "model_version, probability_all, label, state, assessable, client_request_id) "
        "VALUES (?, ?, ?, ?, 'm', '1', 0.9, 'ALL', 'suggests_all', 1, ?)",
        (when, sample_id, request_id, sha, client_request_id),
    )
    connection.execute(
        "INSERT INTO review_decisions (time, sample_id, request_id, image_sha256, decision, "
        "reviewer, comment) VALUES (?, ?, ?, ?, 'ALL', 'Dr A', '')",
        (when, sample_id, request_id, sha),
    )
    connection.commit()
    connection.close()


def test_rows_older_than_the_retention_are_pruned_and_recent_ones_kept(tmp_path):
    """Only the audit used to be pruned, never the sample and decision rows."""
    import time

    from app.records.review_records import RecordsUnavailableError

    path = tmp_path / "audit.sqlite3"
    ReviewRecords(path).close()  # the schema
    insert_old(path, 400, "OLD-1", SHA_A, "r-old")
    insert_old(path, 200, "MID-1", SHA_B, "r-mid")
    insert_old(path, 364, "S-1", SHA_B, "r2", client_request_id="early")
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO sample_withdrawals (time, sample_id, client_request_id) "
        "VALUES (?, 'S-1', 'gone'), (?, 'S-1', 'early')",
        (time.time() - 400 * DAY, time.time() - 400 * DAY),
    )
    connection.commit()
    connection.close()
    records = ReviewRecords(path, retention_days=365)  # prunes on opening
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")], "kept")
    records.add_decision(review(SHA_A, "HEM"))
    assert records.sample("OLD-1") is None
    assert [d.request_id for d in records.sample("MID-1").decisions] == ["r-mid"]
    # the withdrawal is older than the retention, but the answers it withdrew are not: it
    # stays, and so they stay out of the sample
    assert [p.request_id for p in records.sample("S-1").predictions] == ["r1"]
    assert records.prune() == 0
    # 200 days on: MID-1's rows, r2's and the withdrawal go; today's stay
    assert records.prune(now=time.time() + 200 * DAY) == 2 + 2 + 1
    assert records.sample("MID-1") is None
    assert [d.decision for d in records.sample("S-1").decisions] == ["HEM"]
    # and no retention can reach a row younger than the triggers' floor
    with pytest.raises(RecordsUnavailableError, match="append only"):
        records.prune(now=time.time() + 400 * DAY)
    assert [d.decision for d in records.sample("S-1").decisions] == ["HEM"]
    records.close()


def test_without_a_retention_nothing_is_pruned_and_it_has_a_floor(tmp_path):
    path = tmp_path / "audit.sqlite3"
    ReviewRecords(path).close()
    insert_old(path, 4000, "OLD-1", SHA_A, "r-old")
    kept = ReviewRecords(path)
    assert kept.prune() == 0
    assert kept.sample("OLD-1") is not None
    kept.close()
    with pytest.raises(ValueError, match="at least 30 days"):
        ReviewRecords(path, retention_days=7)


def test_a_decision_says_where_its_reviewer_name_came_from(records):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    typed = records.add_decision(review(SHA_A, "HEM"))
    signed_in = records.add_decision(review(SHA_A, "ALL"), reviewer_source="sso_header")
    assert (typed.reviewer_source, signed_in.reviewer_source) == ("free_text", "sso_header")
    assert [d.reviewer_source for d in records.sample("S-1").decisions] == [
        "free_text",
        "sso_header",
    ]
    with pytest.raises(ValueError, match="reviewer"):
        records.add_decision(review(SHA_A, "ALL", reviewer=None))


def test_pruning_on_postgresql_keeps_a_withdrawal_of_kept_answers(postgres_url):
    import time

    from app.records import records_db

    ReviewRecords(postgres_url).close()
    engine = records_db.create_engine(postgres_url)
    old, younger = time.time() - 400 * DAY, time.time() - 300 * DAY
    cell = {
        "sample_id": "S-1",
        "image_sha256": SHA_A,
        "model_id": "m",
        "model_version": "1",
        "probability_all": 0.9,
        "label": "ALL",
        "state": "suggests_all",
        "assessable": 1,
    }
    with engine.begin() as connection:
        connection.execute(
            records_db.sample_predictions.insert(),
            [
                {**cell, "time": old, "request_id": "r-old", "client_request_id": "a"},
                {**cell, "time": younger, "request_id": "r-young", "client_request_id": "b"},
            ],
        )
        connection.execute(
            records_db.sample_withdrawals.insert(),
            [{"time": old, "sample_id": "S-1", "client_request_id": cid} for cid in "ab"],
        )
    engine.dispose()
    records = ReviewRecords(postgres_url, retention_days=365)
    sample = records.sample("S-1")  # r-old pruned, r-young still withdrawn
    assert sample.predictions == []
    assert [w.client_request_id for w in sample.withdrawals] == ["b"]  # a went with r-old
    assert records.prune(now=time.time() + 100 * DAY) == 2
    records.close()
