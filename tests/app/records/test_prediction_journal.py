"""The journal: records on disk before an answer, replayed at start-up, never doubled."""

import errno
import json
import os
import signal
import sqlite3
import sys
import time
from dataclasses import asdict

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from app.records.prediction_journal import PredictionJournal
from app.records.prediction_records import PredictionRecords
from app.records.prediction_rows import PredictionRecord
from app.records.records_errors import RecordsUnavailableError
from app.records.review_records import ReviewRecords


def record(request_id: str, item: int = 0) -> PredictionRecord:
    return PredictionRecord(
        time.time(), request_id, "ab" * 32, "m", "1", 0.7, "ALL", 12.5, "", item
    )


def open_records(database, journal) -> PredictionRecords:
    return ReviewRecords(database, journal=journal).predictions


def test_appended_rows_are_on_disk_when_the_future_is_done(tmp_path):
    journal = PredictionJournal(tmp_path / "a.journal")
    journal.append([asdict(record("r1")), asdict(record("r2"))]).result(timeout=10)
    lines = (tmp_path / "a.journal").read_bytes().splitlines()
    assert [line.count(b'"request_id"') for line in lines] == [1, 1]
    assert [row["request_id"] for row in journal.rows()] == ["r1", "r2"]
    journal.clear()
    assert journal.rows() == []
    journal.close()


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path):
    journal = PredictionJournal(tmp_path / "a.journal")
    journal.append([asdict(record("whole"))]).result(timeout=10)
    with (tmp_path / "a.journal").open("ab") as file:
        file.write(b'{"time": 1, "request_id": "cut')
    assert [row["request_id"] for row in journal.rows()] == ["whole"]
    journal.close()


def test_a_disk_that_refuses_the_rows_fails_the_future(tmp_path, monkeypatch):
    journal = PredictionJournal(tmp_path / "a.journal")

    def full_disk(_: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        journal.append([asdict(record("r1"))]).result(timeout=10)
    journal.close()


def test_start_up_writes_what_the_journal_holds_once(tmp_path):
    database, journal_path = tmp_path / "a.sqlite3", tmp_path / "a.journal"
    log = open_records(database, journal_path)
    log.submit([record("committed")]).recorded.result(timeout=10)
    log.flush(10)
    log.close()
    # What a killed process leaves: rows journalled, one of them already committed.
    journal = PredictionJournal(journal_path)
    rows = [asdict(record("committed")), asdict(record("lost", 0)), asdict(record("lost", 1))]
    journal.append(rows).result(timeout=10)
    journal.close()
    reopened = open_records(database, journal_path)
    assert sorted((r.request_id, r.item) for r in reopened.rows()) == [
        ("committed", 0),
        ("lost", 0),
        ("lost", 1),
    ]
    assert journal_path.read_bytes() == b""
    reopened.close()


def test_the_journal_is_emptied_once_the_database_has_every_row(tmp_path):
    log = open_records(tmp_path / "a.sqlite3", tmp_path / "a.journal")
    log.submit([record("r1"), record("r2", 1)]).recorded.result(timeout=10)
    log.flush(10)
    deadline = time.monotonic() + 10
    while (tmp_path / "a.journal").stat().st_size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "a.journal").stat().st_size == 0
    assert len(log.rows()) == 2
    log.close()


def test_rows_neither_the_journal_nor_the_database_can_take_are_refused(tmp_path, monkeypatch):
    log = open_records(tmp_path / "a.sqlite3", tmp_path / "a.journal")

    def full_disk(_: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def database_full(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(os, "fsync", full_disk)
    monkeypatch.setattr(log, "_insert", database_full)
    with pytest.raises(RecordsUnavailableError):
        log.submit([record("r1")]).recorded.result(timeout=30)
    monkeypatch.undo()
    log.close()


def test_rows_the_journal_cannot_take_are_answered_once_committed(tmp_path, monkeypatch):
    log = open_records(tmp_path / "a.sqlite3", tmp_path / "a.journal")

    def full_disk(_: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    log.submit([record("r1")]).recorded.result(timeout=30)
    monkeypatch.undo()
    assert [r.request_id for r in log.rows()] == ["r1"]
    log.close()


def test_a_prediction_that_cannot_be_recorded_is_503_not_answered(settings, real_cell_png):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings)) as client:
        audit = client.app.state.service.records

        def full_disk(_: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def database_full(*_: object) -> None:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))

        original_fsync, original_insert = os.fsync, audit._insert
        os.fsync, audit._insert = full_disk, database_full
        try:
            refused = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
            batch = client.post(
                "/api/v1/predict/batch", files=[("files", ("c.png", real_cell_png))]
            )
        finally:
            os.fsync, audit._insert = original_fsync, original_insert
        assert refused.status_code == batch.status_code == 503
        assert "could not be recorded" in refused.json()["detail"]
        assert (
            client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)}).status_code
            == 200
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9 and loopback")
def test_answers_given_while_the_database_is_locked_survive_kill_9(
    tmp_path, real_cell_png, start_server
):
    """Before the journal: 20 predictions answered while another process held the database, then
    kill -9: 0 of 20 rows were written."""
    database = tmp_path / "audit.sqlite3"
    settings = {"LEUKOLENS_AUDIT_LOG_PATH": str(database), "LEUKOLENS_WORKER_THREADS": "2"}
    base = start_server(**settings)
    server = start_server.processes[-1]
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    answered = []
    for _ in range(20):
        response = httpx.post(
            f"{base}/api/v1/predict", files={"file": ("c.png", real_cell_png)}, timeout=60
        )
        assert response.status_code == 200
        answered.append(response.json()["request_id"])
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    holder.execute("COMMIT")
    holder.close()
    start_server(**settings)  # replays the journal at start-up
    with sqlite3.connect(database) as reader:
        written = {row[0] for row in reader.execute("SELECT request_id FROM predictions")}
    assert set(answered) <= written


def test_rows_given_up_on_stay_in_the_journal_and_the_rest_is_emptied(tmp_path, monkeypatch):
    """One refused row must not keep every later committed row in the journal for good."""
    journal_path = tmp_path / "a.journal"
    log = open_records(tmp_path / "a.sqlite3", journal_path)
    insert = log._insert

    def refuse_once(requests):
        if requests[0].records[0].request_id == "refused":
            raise OperationalError("INSERT", {}, Exception("constraint failed"))
        return insert(requests)

    monkeypatch.setattr(log, "_insert", refuse_once)
    log.submit([record("refused")]).recorded.result(timeout=30)  # journalled: answered
    log.flush(10)
    for index in range(20):
        log.submit([record(f"later-{index}")]).recorded.result(timeout=30)
    log.flush(10)
    deadline = time.monotonic() + 10
    while len(journal_path.read_bytes().splitlines()) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [row["request_id"] for row in PredictionJournal.rows(log._journal)] == ["refused"]
    log.close()


def test_submitting_never_waits_for_the_disk(tmp_path, monkeypatch):
    """The event loop calls submit: a slow fsync must hold up only the answers waiting for it."""
    log = open_records(tmp_path / "a.sqlite3", tmp_path / "a.journal")
    real_fsync = os.fsync

    def slow_fsync(descriptor: int) -> None:
        time.sleep(0.5)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    slowest = 0.0
    futures = []
    for index in range(6):
        started = time.monotonic()
        futures.append(log.submit([record(f"r{index}")]))
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.2)
    for future in futures:
        future.recorded.result(timeout=30)
    assert slowest < 0.25, slowest
    monkeypatch.undo()
    log.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9 and loopback")
def test_after_kill_9_every_answered_cell_is_in_its_sample_and_no_refused_one_is(
    tmp_path, real_cell_png, encode_png, start_server
):
    """One record per prediction: a cell answered 200 is in its sample with its audit row
    after kill -9; one refused 503 on a locked database never joins it, and its audit row
    (replayed from the journal at the next start) says not answered."""
    import numpy as np

    database = tmp_path / "audit.sqlite3"
    settings = {
        "LEUKOLENS_AUDIT_LOG_PATH": str(database),
        "LEUKOLENS_WORKER_THREADS": "2",
        "LEUKOLENS_AUDIT_BUSY_TIMEOUT_SECONDS": "0.2",
    }
    base = start_server(**settings)
    server = start_server.processes[-1]

    def predict(number: int, sample: str | None) -> httpx.Response:
        cell = encode_png(np.full((64, 64, 3), number, np.uint8))
        query = f"?sample_id={sample}" if sample else ""
        return httpx.post(
            f"{base}/api/v1/predict{query}", files={"file": ("c.png", cell)}, timeout=60
        )

    joined = [predict(n, "KILL-1") for n in range(5)]
    assert [answer.status_code for answer in joined] == [200] * 5
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    refused = [predict(10 + n, "KILL-1") for n in range(3)]
    plain = [predict(20 + n, None) for n in range(3)]
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    holder.execute("ROLLBACK")
    holder.close()
    assert [answer.status_code for answer in refused] == [503] * 3
    assert [answer.status_code for answer in plain] == [200] * 3
    start_server(**settings)  # replays the journal at start-up
    with sqlite3.connect(database) as reader:
        outcomes = dict(reader.execute("SELECT request_id, outcome FROM predictions"))
        cells = {row[0] for row in reader.execute("SELECT request_id FROM sample_predictions")}
    ids = [answer.headers["x-request-id"] for answer in (*joined, *refused, *plain)]
    assert [outcomes.get(request_id) for request_id in ids] == ["answered"] * 5 + [
        "not_answered"
    ] * 3 + ["answered"] * 3
    assert cells == {answer.json()["request_id"] for answer in joined}


def test_a_reset_never_overtakes_an_append_queued_after_it(tmp_path, monkeypatch):
    """A reset met while grouping appends used to be queued again, behind appends made
    meanwhile: it then emptied the journal of a row the database did not have yet."""
    import threading

    journal = PredictionJournal(tmp_path / "a.journal")
    writing, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def held_fsync(descriptor: int) -> None:
        if not release.is_set():
            writing.set()
            release.wait(10)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", held_fsync)
    first = journal.append([asdict(record("first"))])
    assert writing.wait(10)  # the thread is inside the first append's fsync
    journal.append([asdict(record("committed"))])
    journal.reset([])  # every row so far is in the database
    after = journal.append([asdict(record("after-the-reset"))])
    release.set()
    first.result(10)
    after.result(10)
    journal.close()
    lines = (tmp_path / "a.journal").read_bytes().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["after-the-reset"]
