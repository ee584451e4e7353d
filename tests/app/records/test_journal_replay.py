"""One journal line that was valid JSON but no row once kept all five good rows around it
out of the database, on every later start. A line is now a row or it is set aside."""

import json
import sqlite3
import time
from dataclasses import asdict

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from app.records import records_db
from app.records.journal_replay import quarantine_path
from app.records.prediction_records import PredictionRecords
from app.records.prediction_rows import PredictionRecord
from app.records.review_records import ReviewRecords


def row(name: str, **changes: object) -> dict:
    record = PredictionRecord(time.time(), name, "ab" * 32, "m", "1", 0.7, "ALL", 12.5)
    return {**asdict(record), **changes}


def audit_only(name: str, **changes: object) -> dict:
    """A line as the journal held it before records joined their samples."""
    fields = ("time", "request_id", "image_sha256", "model_id", "model_version")
    fields += ("probability_all", "label", "latency_ms", "client_request_id", "item", "outcome")
    return {key: value for key, value in row(name, **changes).items() if key in fields}


def line(value: object) -> bytes:
    return json.dumps(value).encode() + b"\n"


BAD_LINES = {
    "an object that is no row": line({"a": 1}),
    "null": line(None),
    "a list": line([1, 2]),
    "a string probability": line(row("bad", probability_all="0.7")),
    "a null request id": line(row("bad", request_id=None)),
    "a probability above one": line(row("bad", probability_all=3.0)),
    "an unknown outcome": line(row("bad", outcome="maybe")),
    "binary garbage": b"\x00\x01\x02garbage\x7f\n",
    "invalid UTF-8": b'{"request_id": "\xff\xfe"}\n',
    "a line torn mid-row": b'{"time": 1, "request_id": "cut\n',
    "an empty sample id": line(row("bad", sample_id="")),
    "a tta written as a string": line(row("bad", sample_id="S-1", tta="yes")),
}


def journal_with(path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def request_ids(database) -> list[str]:
    with sqlite3.connect(database) as reader:
        return [r[0] for r in reader.execute("SELECT request_id FROM predictions ORDER BY id")]


@pytest.mark.parametrize("bad", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_every_good_row_around_a_bad_line_is_written_and_the_line_set_aside(tmp_path, bad):
    journal, database = tmp_path / "audit.journal", tmp_path / "audit.sqlite3"
    good = [line(row(f"good-{n}")) for n in range(5)]
    journal_with(journal, [*good[:2], bad, *good[2:]])
    counted: list[int] = []
    log = ReviewRecords(database, journal=journal, on_quarantined=counted.append)
    log.close()
    assert request_ids(database) == [f"good-{n}" for n in range(5)]
    assert journal.read_bytes() == b""  # emptied: nothing is replayed twice
    (entry,) = [json.loads(x) for x in quarantine_path(journal).read_bytes().splitlines()]
    assert entry["reason"]
    kept = entry.get("line", "").encode() if "line" in entry else None
    if kept is not None:
        assert kept == bad
    assert counted == [1]
    ReviewRecords(database, journal=journal).close()  # a later start: no change
    assert len(quarantine_path(journal).read_bytes().splitlines()) == 1


def test_a_row_the_database_refuses_for_its_content_is_set_aside(tmp_path):
    """A constraint the lab added (a trigger refusing one model's rows): that row only."""
    journal, database = tmp_path / "audit.journal", tmp_path / "audit.sqlite3"
    ReviewRecords(database).close()
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TRIGGER no_withdrawn_model BEFORE INSERT ON predictions "
            "WHEN NEW.model_id = 'withdrawn' BEGIN SELECT RAISE(ABORT, 'model withdrawn'); END"
        )
    journal_with(
        journal,
        [line(row("before")), line(row("refused", model_id="withdrawn")), line(row("after"))],
    )
    ReviewRecords(database, journal=journal).close()
    assert request_ids(database) == ["before", "after"]
    (entry,) = [json.loads(x) for x in quarantine_path(journal).read_bytes().splitlines()]
    assert "model withdrawn" in entry["reason"]
    assert json.loads(entry["line"])["request_id"] == "refused"


def test_postgresql_refusing_a_row_for_its_content_costs_only_that_row(tmp_path, postgres_url):
    journal = tmp_path / "audit.journal"
    journal_with(
        journal,
        [line(row("before")), line(row("nul\u0000byte")), line(row("after"))],
    )
    ReviewRecords(postgres_url, journal=journal).close()
    engine = records_db.create_engine(postgres_url)
    with engine.connect() as connection:
        written = connection.execute(
            sa.select(records_db.predictions.c.request_id).order_by(records_db.predictions.c.id)
        ).scalars()
        assert list(written) == ["before", "after"]
    engine.dispose()
    assert len(quarantine_path(journal).read_bytes().splitlines()) == 1


def test_a_database_that_cannot_take_rows_now_keeps_them_for_the_next_start(tmp_path, monkeypatch):
    """Out of disk (or locked, or away): no fault of the rows; the bad line still goes."""
    journal, database = tmp_path / "audit.journal", tmp_path / "audit.sqlite3"
    journal_with(journal, [line(row("kept-1")), line(None), line(row("kept-2"))])

    def disk_full(self, rows):
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    with monkeypatch.context() as patched:
        patched.setattr(PredictionRecords, "_write_rows", disk_full)
        ReviewRecords(database, journal=journal).close()
    kept = [json.loads(x)["request_id"] for x in journal.read_bytes().splitlines()]
    assert kept == ["kept-1", "kept-2"]
    assert len(quarantine_path(journal).read_bytes().splitlines()) == 1
    ReviewRecords(database, journal=journal).close()
    assert request_ids(database) == ["kept-1", "kept-2"]


def test_a_bad_line_the_quarantine_cannot_take_stays_in_the_journal(tmp_path):
    journal, database = tmp_path / "audit.journal", tmp_path / "audit.sqlite3"
    quarantine_path(journal).mkdir()  # cannot be appended to: a disk error, as it were
    journal_with(journal, [line(row("good")), line({"a": 1})])
    ReviewRecords(database, journal=journal).close()
    assert request_ids(database) == ["good"]
    assert journal.read_bytes() == line({"a": 1})


def test_the_quarantined_lines_are_counted_on_metrics(settings, real_cell_png):
    from fastapi.testclient import TestClient

    from app.main import create_app

    journal = settings.journal_path
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal_with(journal, [line(row("good")), line({"a": 1}), line([1, 2])])
    with TestClient(create_app(settings)) as client:
        metrics = client.get("/metrics").text
    assert "leukolens_audit_journal_quarantined_total 2.0" in metrics
    assert request_ids(settings.audit_log_path) == ["good"]


def test_a_line_that_joined_a_sample_is_replayed_as_its_audit_row_not_answered(tmp_path):
    """Answered only once committed: still in the journal, it is in the database already or
    its answer never went out. Never a cell at start-up; a committed row is left as it is."""
    journal, database = tmp_path / "audit.journal", tmp_path / "audit.sqlite3"
    records = ReviewRecords(database)
    committed = PredictionRecord(**row("committed", sample_id="S-1", state="suggests_all"))
    records.predictions.submit([committed]).recorded.result(10)
    records.close()
    journal_with(
        journal,
        [
            line(asdict(committed)),
            line(row("never-answered", sample_id="S-1", state="suggests_all")),
            line(audit_only("earlier", outcome="answered")),
            line(audit_only("earlier", outcome="not_answered")),  # an earlier mark
        ],
    )
    replayed = ReviewRecords(database, journal=journal)
    outcomes = {r.request_id: r.outcome for r in replayed.predictions.rows()}
    assert outcomes == {
        "committed": "answered",  # its replay inserts nothing over it
        "never-answered": "not_answered",
        "earlier": "not_answered",  # a mark of an earlier release: its request got 503
    }
    assert [c.request_id for c in replayed.sample("S-1").predictions] == ["committed"]
    assert journal.read_bytes() == b""
    replayed.close()
