"""The audit's export: every row with its outcome, read in slices and streamed."""

import csv
import io

import sqlalchemy as sa

from app.records import records_db


def seed_audit(database, count: int, *, start: float = 1_700_000_000.0) -> None:
    engine = records_db.create_engine(records_db.sqlite_url(database))
    records_db.migrate(engine)
    rows = [
        {
            "time": start + n,
            "request_id": f"r-{n}",
            "image_sha256": f"{n:064x}",
            "model_id": "m",
            "model_version": "1",
            "probability_all": 0.25,
            "label": "HEM",
            "latency_ms": 10.0,
            "client_request_id": "-1+1" if n == 0 else "",  # a formula, to a spreadsheet
            "item": 0,
            "outcome": "not_answered" if n % 10 == 0 else "answered",
        }
        for n in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(records_db.predictions.insert(), rows)
    engine.dispose()


def test_the_audit_is_exported_whole_with_each_rows_outcome_in_slices(client, settings):
    seed_audit(settings.audit_log_path, 2_500)
    statements: list[str] = []
    engine = client.app.state.review_records.engine
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    answer = client.get("/api/v1/audit.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "content-length" not in answer.headers  # streamed as it is read
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 2_500
    assert sum(row["outcome"] == "answered" for row in rows) == 2_250
    first = next(row for row in rows if row["request_id"] == "r-0")
    assert first["client_request_id"] == "'-1+1"
    assert first["time_utc"] == "2023-11-14T22:13:20Z"
    assert first["outcome"] == "not_answered"
    assert len([s for s in statements if "FROM predictions" in s]) == 4  # 3 slices and the end


def test_the_export_takes_a_time_window(client, settings):
    seed_audit(settings.audit_log_path, 100)
    answer = client.get(
        "/api/v1/audit.csv",
        params={"since": "2023-11-14T22:13:30", "until": "2023-11-14T22:13:40+00:00"},
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted(int(row["request_id"][2:]) for row in rows) == list(range(10, 20))


def test_without_an_audit_log_there_is_nothing_to_export(settings):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"audit_log": False}))) as client:
        answer = client.get("/api/v1/audit.csv")
    assert answer.status_code == 404
    assert "switched off" in answer.json()["detail"]
