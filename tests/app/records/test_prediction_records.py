"""The one writer of prediction records: group commit, retries, keys, and what waits for it."""

import threading
import time
from dataclasses import asdict

import pytest

from app.records.prediction_records import PredictionRecords
from app.records.prediction_rows import PredictionRecord
from app.records.review_records import ReviewRecords


def open_records(database, **options) -> PredictionRecords:
    """The writer as the server opens it: the records' (their engine, their sample lock)."""
    return ReviewRecords(database, **options).predictions


def drop_table(log: PredictionRecords) -> None:
    with log._engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE predictions")


def record(when: float, request_id: str = "r1") -> PredictionRecord:
    return PredictionRecord(when, request_id, "ab" * 32, "m", "1", 0.7, "ALL", 12.5)


def test_records_are_written_in_the_background(tmp_path):
    log = open_records(tmp_path / "a.sqlite3")
    log.submit([record(time.time(), "r1"), record(time.time(), "r2")]).written.result(timeout=10)
    assert [r.request_id for r in log.rows()] == ["r1", "r2"]
    log.close()


def test_audit_rows_older_than_the_one_retention_are_pruned_with_the_records(tmp_path):
    records = ReviewRecords(tmp_path / "a.sqlite3", retention_days=30)
    log = records.predictions
    old = record(time.time() - 40 * 86_400, "old")
    log.submit([old, record(time.time(), "new")]).written.result(10)
    assert records.prune() == 1
    assert [r.request_id for r in log.rows()] == ["new"]
    records.close()


def test_a_failed_write_does_not_raise(tmp_path, caplog):
    log = open_records(tmp_path / "a.sqlite3")
    drop_table(log)
    log.submit([record(time.time())]).written.result(timeout=10)  # no exception escapes
    assert "audit log write failed" in caplog.text
    log.close()


def _hold_the_writer(
    log: PredictionRecords, monkeypatch
) -> tuple[threading.Event, list[list[str]]]:
    """Make the writer wait in its first write until released; record every transaction."""
    release = threading.Event()
    transactions: list[list[str]] = []
    insert = log._insert

    def held_insert(requests):
        release.wait(10)
        transactions.append([r.request_id for p in requests for r in p.records])
        return insert(requests)

    monkeypatch.setattr(log, "_insert", held_insert)
    return release, transactions


def test_requests_queued_while_the_writer_is_busy_share_one_transaction(tmp_path, monkeypatch):
    log = open_records(tmp_path / "a.sqlite3")
    release, transactions = _hold_the_writer(log, monkeypatch)
    written = [log.submit([record(time.time(), f"r{n}")]) for n in range(40)]
    release.set()
    for pending in written:
        pending.written.result(timeout=10)
    assert [r.request_id for r in log.rows()] == [f"r{n}" for n in range(40)]
    assert len(transactions) <= 3  # the first alone (already taken), the rest together
    assert sum(map(len, transactions)) == 40
    log.close()


def test_a_request_that_cannot_be_written_costs_only_its_own_rows(tmp_path, monkeypatch, caplog):
    import sqlalchemy as sa

    log = open_records(tmp_path / "a.sqlite3")
    release, _ = _hold_the_writer(log, monkeypatch)
    insert = log._insert

    def failing_for_bad(requests):
        if any(r.request_id == "bad" for p in requests for r in p.records):
            raise sa.exc.StatementError("cannot bind", "INSERT", {}, ValueError("bad value"))
        return insert(requests)

    monkeypatch.setattr(log, "_insert", failing_for_bad)
    held = log.submit([record(time.time(), "first")])  # the writer takes it and waits
    ids = ["a", "b", "bad", "c", "d"]
    written = [log.submit([record(time.time(), i), record(time.time(), i)]) for i in ids]
    marker = log.submit([])  # as `flush` queues one: no rows, never an error of its own
    release.set()
    for pending in [held, *written, marker]:
        pending.written.result(timeout=10)
    assert [r.request_id for r in log.rows()] == ["first", "a", "a", "b", "b", "c", "c", "d", "d"]
    assert log.failed == 2
    assert log.backlog == 0
    assert "2 prediction(s) were answered but not recorded" in caplog.text
    assert "0 prediction(s)" not in caplog.text
    log.close()


def test_a_cancelled_wait_does_not_stop_the_writer(tmp_path, monkeypatch):
    log = open_records(tmp_path / "a.sqlite3")
    release, _ = _hold_the_writer(log, monkeypatch)
    log.submit([record(time.time(), "first")])
    abandoned = log.submit([record(time.time(), "abandoned")])
    assert abandoned.written.cancel()  # as a caller's timeout around it would
    release.set()
    log.submit([record(time.time(), "later")]).written.result(timeout=10)
    assert [r.request_id for r in log.rows()] == ["first", "abandoned", "later"]
    log.close()


def test_after_close_rows_are_counted_as_lost_and_nothing_waits(tmp_path, caplog):
    log = open_records(tmp_path / "a.sqlite3")
    log.close()
    log.submit([record(time.time(), "late")]).written.result(timeout=1)
    log.flush(timeout=1)
    log.close()  # twice is harmless
    assert log.failed == 1
    assert log.backlog == 0
    assert "audit log closed; 1 prediction(s) were answered but not recorded" in caplog.text


def test_close_writes_what_is_queued(tmp_path):
    log = open_records(tmp_path / "a.sqlite3")
    for n in range(100):
        log.submit([record(time.time(), f"r{n}")])
    log.close()
    reopened = open_records(tmp_path / "a.sqlite3")
    assert len(reopened.rows()) == 100
    reopened.close()


def test_predictions_are_audited_without_the_image(client, real_cell_png, settings):
    import hashlib
    import sqlite3

    response = client.post("/api/v1/predict", files={"file": ("patient-name.png", real_cell_png)})
    body = response.json()
    client.app.state.service.records.flush(timeout=10)
    rows = client.app.state.service.records.rows()
    assert len(rows) == 1
    assert rows[0].request_id == body["request_id"]
    assert rows[0].image_sha256 == hashlib.sha256(real_cell_png).hexdigest()
    assert rows[0].probability_all == body["probability_all"]
    dump = "\n".join(sqlite3.connect(settings.audit_log_path).iterdump())
    assert "patient-name" not in dump


def test_a_broken_audit_log_never_fails_a_prediction(client, real_cell_png):
    audit = client.app.state.service.records
    drop_table(audit)
    response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    assert response.status_code == 200


def test_an_unopenable_path_is_a_start_up_error_naming_it(tmp_path, settings):
    """An unwritable audit path once stopped the server with a raw traceback."""
    import pytest
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.records.records_errors import RecordsDatabaseError

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the audit folder should be")
    path = blocker / "audit.sqlite3"
    with pytest.raises(RecordsDatabaseError, match=str(path)):
        open_records(path)
    with (
        pytest.raises(RecordsDatabaseError, match="LEUKOLENS_AUDIT_LOG_PATH"),
        TestClient(create_app(settings.model_copy(update={"audit_log_path": path}))),
    ):
        pass


def test_rows_wait_for_a_locked_database_and_none_is_lost_or_doubled(settings, real_cell_png):
    """Before the fix, with the database locked by another process for 11 s, 2 of 21
    predictions were never recorded. Here another connection holds it for 10 s under 20
    predictions."""
    import sqlite3
    import time

    from fastapi.testclient import TestClient

    from app.main import create_app

    patient = settings.model_copy(update={"audit_busy_timeout_seconds": 0.2})
    with TestClient(create_app(patient)) as client:
        audit = client.app.state.service.records
        other = sqlite3.connect(settings.audit_log_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        ids = []
        for index in range(20):
            response = client.post(
                "/api/v1/predict",
                files={"file": ("c.png", real_cell_png)},
                headers={"X-Request-ID": "same-client-id"},
            )
            assert response.status_code == 200
            ids.append(response.json()["request_id"])
            if index == 0:
                time.sleep(0.5)
                metrics = client.get("/metrics").text
                assert "leukolens_audit_backlog 0.0" not in metrics
        assert audit.backlog > 0
        time.sleep(max(0.0, 10.0 - (time.monotonic() - locked_at)))
        other.execute("COMMIT")
        other.close()
        deadline = time.monotonic() + 30
        while audit.backlog and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = audit.rows()
        assert "leukolens_audit_backlog 0.0" in client.get("/metrics").text
    assert [row.request_id for row in rows] == ids
    assert len(set(ids)) == 20  # the server's ids: one client id cannot make two rows one
    assert {row.client_request_id for row in rows} == {"same-client-id"}
    assert audit.failed == 0


def test_a_retried_write_never_doubles_a_row(tmp_path):
    log = open_records(tmp_path / "a.sqlite3")
    batch = [record(time.time(), "req"), record(time.time(), "req")]
    log.submit(batch).written.result(timeout=10)
    written = [PredictionRecord(**asdict(row)) for row in log.rows()]
    log.submit(written).written.result(10)  # the same rows again, as a lost COMMIT's retry would
    assert [(r.request_id, r.item) for r in log.rows()] == [("req", 0), ("req", 1)]
    log.close()


def test_an_older_database_gains_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
        "request_id TEXT NOT NULL, image_sha256 TEXT NOT NULL, model_id TEXT NOT NULL, "
        "model_version TEXT NOT NULL, probability_all REAL NOT NULL, label TEXT NOT NULL, "
        "latency_ms REAL NOT NULL);"
        "INSERT INTO predictions (time, request_id, image_sha256, model_id, model_version, "
        "probability_all, label, latency_ms) VALUES (1e10, 'old', 'ab', 'm', '1', 0.5, 'ALL', 1);"
    )
    old.commit()
    old.close()
    log = open_records(path)
    log.submit([record(time.time(), "new")]).written.result(timeout=10)
    assert [(r.request_id, r.client_request_id, r.item) for r in log.rows()] == [
        ("old", "", 0),
        ("new", "", 0),
    ]
    log.close()


# --- PostgreSQL: several replicas, and a database that goes away under load -------------------


def audit_backlog(base: str) -> float:
    import re

    import httpx

    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    return float(re.search(r"^leukolens_audit_backlog (\S+)$", metrics, re.MULTILINE)[1])


def wait_for_empty_backlogs(bases: list[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while any(audit_backlog(base) for base in bases):
        assert time.monotonic() < deadline, "the audit backlog never drained"
        time.sleep(0.2)


def request_ids_in(database_url: str) -> list[str]:
    import sqlalchemy as sa

    from app.records.records_db import predictions

    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        ids = list(connection.execute(sa.select(predictions.c.request_id)).scalars())
    engine.dispose()
    return ids


def load(bases: list[str], payload: bytes, total: int, concurrency: int, answered: list) -> None:
    """`total` predictions spread over the servers, `concurrency` at a time; every response
    is appended to `answered` as it arrives (bounded: 300 s at most)."""
    import asyncio
    import itertools

    import httpx

    async def run() -> None:
        numbers = iter(range(total))
        servers = itertools.cycle(bases)
        async with httpx.AsyncClient(timeout=60) as client:

            async def worker() -> None:
                for number in numbers:
                    files = {"file": (f"cell-{number}.png", payload, "image/png")}
                    url = f"{next(servers)}/api/v1/predict"
                    answered.append(await client.post(url, files=files))

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 300)

    asyncio.run(run())


@pytest.mark.load
def test_two_replicas_on_one_postgresql_write_every_row_once(
    start_server, model_store, postgres_url, real_cell_png
):
    bases = [
        start_server(LEUKOLENS_MODEL_STORE=str(model_store), LEUKOLENS_DATABASE_URL=postgres_url)
        for _ in range(2)
    ]
    answered: list = []
    load(bases, real_cell_png, total=400, concurrency=16, answered=answered)
    assert [response.status_code for response in answered] == [200] * 400
    wait_for_empty_backlogs(bases)
    written = request_ids_in(postgres_url)
    expected = {response.json()["request_id"] for response in answered}
    print(f"two replicas: {len(answered)} answered, {len(written)} rows written")
    assert len(expected) == 400
    assert sorted(written) == sorted(expected)  # every row, none twice, none foreign


@pytest.mark.load
def test_postgresql_restarting_mid_load_loses_and_doubles_no_row(
    start_server, model_store, postgres, postgres_url, real_cell_png
):
    import threading

    base = start_server(
        LEUKOLENS_MODEL_STORE=str(model_store),
        LEUKOLENS_DATABASE_URL=postgres_url,
        LEUKOLENS_AUDIT_BUSY_TIMEOUT_SECONDS="1",
    )
    answered: list = []
    loader = threading.Thread(target=load, args=([base], real_cell_png, 300, 4, answered))
    loader.start()
    deadline = time.monotonic() + 120
    while len(answered) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    postgres.stop()
    try:
        stopped_at = len(answered)
        highest_backlog = 0.0
        while (len(answered) < stopped_at + 60 or highest_backlog == 0) and loader.is_alive():
            highest_backlog = max(highest_backlog, audit_backlog(base))
            time.sleep(0.1)
    finally:
        postgres.start()
    restarted_at = len(answered)
    loader.join(timeout=300)
    assert not loader.is_alive()
    assert [response.status_code for response in answered] == [200] * 300
    assert 60 <= stopped_at < restarted_at < 300  # the database was away mid-load
    assert highest_backlog > 0
    wait_for_empty_backlogs([base])
    written = request_ids_in(postgres_url)
    expected = {response.json()["request_id"] for response in answered}
    print(
        f"restart: {len(answered)} answered, {restarted_at - stopped_at} while the database "
        f"was down, backlog up to {highest_backlog:.0f}, {len(written)} rows written"
    )
    assert sorted(written) == sorted(expected)
    server_log = next(start_server.audit_dir.glob("server-*.log")).read_text()
    assert "retrying" in server_log
    assert "audit log write failed" not in server_log


def test_a_request_refused_after_its_rows_were_kept_is_marked_not_answered(tmp_path):
    """The audit records answers, not attempts. The mark follows the rows whether
    they are written yet or not, and a replayed answered row never takes it back."""
    log = open_records(tmp_path / "a.sqlite3", journal=tmp_path / "a.journal")
    now = time.time()
    written = log.submit([record(now, "written"), record(now, "written")])
    written.written.result(timeout=10)
    log.flush(10)
    assert log.abandon(written)
    queued = log.submit([record(now, "queued")])
    assert log.abandon(queued)  # before its row is written
    log.submit([record(now, "answered")])
    log.flush(10)
    outcomes = {(r.request_id, r.item): r.outcome for r in log.rows()}
    assert outcomes == {
        ("written", 0): "not_answered",
        ("written", 1): "not_answered",
        ("queued", 0): "not_answered",
        ("answered", 0): "answered",
    }
    log.submit([record(now, "written")])  # the same row again, as a replay would write it
    log.flush(10)
    assert {r.outcome for r in log.rows() if r.request_id == "written"} == {"not_answered"}
    log.close()


# --- Records that join a sample: answered once committed, one attempt, never a late cell ----


def joining(request_id: str, sample_id: str = "S-1") -> PredictionRecord:
    return PredictionRecord(
        time.time(),
        request_id,
        "ab" * 32,
        "m",
        "1",
        0.7,
        "ALL",
        12.5,
        sample_id=sample_id,
        state="suggests_all",
        assessable=True,
    )


def test_a_record_joining_a_sample_is_answered_once_its_cell_is_committed(tmp_path):
    records = ReviewRecords(tmp_path / "a.sqlite3", journal=tmp_path / "a.journal")
    first = records.predictions.submit([joining("r1")])
    again = records.predictions.submit([joining("r2")])
    assert first.recorded.result(10) == [None]
    assert again.recorded.result(10) == ["r1"]  # the same bytes: a repeat of the first
    assert [c.request_id for c in records.sample("S-1").predictions] == ["r1"]
    assert [(r.request_id, r.outcome) for r in records.predictions.rows()] == [
        ("r1", "answered"),
        ("r2", "answered"),
    ]
    records.close()


def test_on_a_locked_database_a_record_joining_a_sample_is_refused_and_never_joins(tmp_path):
    """Its one attempt: the request is refused (503), its audit row is written on as not
    answered once the database is back, and its cell never appears."""
    import sqlite3

    from app.records.records_errors import RecordsUnavailableError

    path = tmp_path / "a.sqlite3"
    records = ReviewRecords(path, busy_timeout_seconds=0.2, journal=tmp_path / "a.journal")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        refused = records.predictions.submit([joining("locked")])
        with pytest.raises(RecordsUnavailableError, match="could not be written"):
            refused.recorded.result(10)
        assert not records.predictions.abandon(refused)  # settled: nothing more to do
    finally:
        holder.rollback()
        holder.close()
    records.predictions.flush(30)
    assert records.sample("S-1") is None
    assert [(r.request_id, r.outcome) for r in records.predictions.rows()] == [
        ("locked", "not_answered")
    ]
    records.close()


def test_a_record_its_request_abandoned_before_the_writer_reached_it_never_joins(
    tmp_path, monkeypatch
):
    records = ReviewRecords(tmp_path / "a.sqlite3")
    log = records.predictions
    release, _ = _hold_the_writer(log, monkeypatch)
    log.submit([record(time.time(), "first")])  # the writer takes it and waits
    late = log.submit([joining("late")])
    assert log.abandon(late)  # its request waited too long: answered 503
    release.set()
    with pytest.raises(Exception, match="could not be written"):
        late.recorded.result(10)
    log.flush(10)
    assert records.sample("S-1") is None
    assert [(r.request_id, r.outcome) for r in log.rows()] == [
        ("first", "answered"),
        ("late", "not_answered"),
    ]
    records.close()


def test_a_record_whose_attempt_is_under_way_cannot_be_abandoned(tmp_path, monkeypatch):
    from app.records import prediction_records

    records = ReviewRecords(tmp_path / "a.sqlite3")
    log = records.predictions
    entered, release = threading.Event(), threading.Event()
    write = prediction_records.prediction_rows.write

    def held_write(connection, batch, **options):
        entered.set()
        release.wait(10)
        return write(connection, batch, **options)

    monkeypatch.setattr(prediction_records.prediction_rows, "write", held_write)
    under_way = log.submit([joining("r1")])
    assert entered.wait(10)  # the writer is in its transaction
    assert not log.abandon(under_way)
    log.unanswered(under_way)  # its client left: the cell stays, the audit says so
    release.set()
    assert under_way.recorded.result(10) == [None]
    log.flush(10)
    assert [c.request_id for c in records.sample("S-1").predictions] == ["r1"]
    assert [(r.request_id, r.outcome) for r in log.rows()] == [("r1", "not_answered")]
    records.close()


def test_a_record_waiting_for_the_samples_turn_is_not_yet_under_way(tmp_path):
    """Another write to a sample (a decision, the pruning) holds the turn: a client that
    leaves meanwhile leaves no cell behind, and its audit row says it was not answered."""
    records = ReviewRecords(tmp_path / "a.sqlite3")
    log = records.predictions
    with log._sample_turn:
        waiting = log.submit([joining("r1")])
        time.sleep(0.2)  # the writer has taken it and waits for the turn
        log.unanswered(waiting)
    with pytest.raises(Exception, match="could not be written"):
        waiting.recorded.result(10)
    log.flush(10)
    assert records.sample("S-1") is None
    assert [(r.request_id, r.outcome) for r in log.rows()] == [("r1", "not_answered")]
    records.close()
