"""Sign-offs in the records: the life cycle, the refusals after a sign-off, and a sign-off and
decisions racing on one sample (PostgreSQL, several threads)."""

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.core.domain.reviews import ReviewRecord
from app.core.domain.samples import SignOffRecord
from app.core.identities import ANONYMOUS, Identity
from app.records import records_db
from app.records.decision_replays import IdempotencyConflictError
from app.records.review_records import ReviewRecords
from app.records.sign_off import SampleStateError, SignOffRow, UnknownSampleError, life_cycle
from tests.app.records.test_review_records import SHA_A, SHA_B, prediction, review

NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request, tmp_path):
    where = (
        tmp_path / "audit.sqlite3"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = ReviewRecords(where)
    yield store
    store.close()


def decided(record_id: int, sha: str, what: str, amendment: str | None = None) -> ReviewRecord:
    return ReviewRecord(
        id=record_id,
        time=NOW,
        request_id="r1",
        image_sha256=sha,
        sample_id="S-1",
        decision=what,
        reviewer="A",
        amendment=amendment,
    )


def signed(last_decision_id: int) -> SignOffRow:
    record = SignOffRecord(
        id=1,
        by="B",
        by_source="free_text",
        time=NOW,
        comment="",
        cells=1,
        undecided_cells=0,
        content_sha256="0" * 64,
    )
    return SignOffRow(record=record, last_decision_id=last_decision_id, rows_sha256="{}")


def test_the_status_follows_the_sign_offs_and_the_decisions_after_them():
    decisions = [decided(1, SHA_A, "HEM"), decided(2, SHA_B, "ALL")]
    assert life_cycle([], decisions) == ("preliminary", [])
    assert life_cycle([signed(2)], decisions) == ("final", [])
    # A later decision of another sample (a higher id) is not this one's.
    assert life_cycle([signed(9)], decisions) == ("final", [])
    amended = [*decisions, decided(10, SHA_A, "ALL", "second look")]
    status, amendments = life_cycle([signed(9)], amended)
    assert status == "amended"
    assert [(a.old_decision, a.new_decision, a.reason) for a in amendments] == [
        ("HEM", "ALL", "second look")
    ]
    assert life_cycle([signed(9), signed(10)], amended)[0] == "final"


def test_signing_off_binds_the_sample_and_refuses_silent_changes(records):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")], "upload-1")
    with pytest.raises(SampleStateError, match="1 of 1 cells of sample 'S-1' is undecided"):
        records.sign_offs.sign_off("S-1", signer="B", signer_source="free_text")
    records.add_decision(review(SHA_A, "ALL"))
    first = records.sign_offs.sign_off("S-1", signer="B", signer_source="free_text")
    assert (first.cells, first.undecided_cells) == (1, 0)
    with pytest.raises(SampleStateError, match="a new cell"):
        records.add_predictions("S-1", [prediction(SHA_B, 0.2, "suggests_normal")])
    with pytest.raises(SampleStateError, match="withdrawing an upload"):
        records.withdraw("S-1", "upload-1", ANONYMOUS)
    with pytest.raises(SampleStateError, match="'amendment'"):
        records.add_decision(review(SHA_A, "HEM"))
    records.add_decision(review(SHA_A, "HEM", amendment="misread"))
    report = records.sample("S-1")
    assert report.status == "amended"
    assert [d.decision for d in report.decisions] == ["ALL", "HEM"]
    second = records.sign_offs.sign_off("S-1", signer="C", signer_source="free_text")
    assert second.content_sha256 != first.content_sha256
    assert records.sample("S-1").status == "final"
    assert records.sign_offs.verify("S-1").verdict == "matches"
    with pytest.raises(UnknownSampleError):
        records.sign_offs.sign_off("S-9", signer="B", signer_source="free_text")


def test_after_sign_off_not_even_the_owner_withdraws_an_undecided_upload(records):
    owner = Identity("Dr A", "reviewer_key")
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")], "upload-1", owner)
    records.add_predictions("S-1", [prediction(SHA_B, 0.2, "suggests_normal")], "upload-2", owner)
    records.add_decision(review(SHA_A, "ALL"))
    signed = records.sign_offs.sign_off(
        "S-1", signer="B", signer_source="free_text", leave_undecided=True
    )
    assert (signed.cells, signed.undecided_cells) == (2, 1)
    with pytest.raises(SampleStateError, match="withdrawing an upload would change it"):
        records.withdraw("S-1", "upload-2", owner)
    report = records.sample("S-1")
    assert (len(report.predictions), report.withdrawals) == (2, [])
    assert records.sign_offs.verify("S-1").verdict == "matches"


def test_an_amendment_is_replayed_under_its_idempotency_key(records):
    """A decision kept before sign-off and sent again after it is its first record (no 409);
    an amendment sent twice under one key is stored once; another reason under it is refused."""
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    first, _ = records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")
    records.sign_offs.sign_off("S-1", signer="B", signer_source="free_text")
    again, replayed = records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")
    assert (again.id, replayed) == (first.id, True)
    amend = review(SHA_A, "HEM", amendment="misread")
    stored, replayed = records.add_decision_once(amend, idempotency_key="k-2")
    assert (stored.amendment, replayed) == ("misread", False)
    same, replayed = records.add_decision_once(amend, idempotency_key="k-2")
    assert (same.id, same.amendment, replayed) == (stored.id, "misread", True)
    with pytest.raises(IdempotencyConflictError):
        records.add_decision_once(
            review(SHA_A, "HEM", amendment="another reason"), idempotency_key="k-2"
        )
    report = records.sample("S-1")
    assert [d.decision for d in report.decisions] == ["ALL", "HEM"]
    assert (report.status, [a.reason for a in report.amendments]) == ("amended", ["misread"])


def test_an_unsigned_sample_verifies_as_not_signed(records):
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    assert records.sign_offs.verify("S-1").verdict == "not_signed"
    with pytest.raises(UnknownSampleError):
        records.sign_offs.verify("S-9")


def test_a_sign_off_and_decisions_racing_never_leave_an_unreasoned_change(postgres_url):
    """Eight reviewers decide while one signs off: every decision after the sign-off was
    refused, so the sample is final and verifies; none slipped between check and write."""
    records = ReviewRecords(postgres_url)
    try:
        cells = [f"{n:064x}" for n in range(8)]
        records.add_predictions(
            "S-1", [prediction(sha, 0.9, "suggests_all", request_id="r1") for sha in cells]
        )
        start = threading.Barrier(9)
        outcomes: list[str] = []

        def decide(sha: str) -> None:
            start.wait()
            for _ in range(5):
                try:
                    records.add_decision(review(sha, "ALL"))
                    outcomes.append("stored")
                except SampleStateError:
                    outcomes.append("refused")

        def sign() -> None:
            start.wait()
            records.sign_offs.sign_off(
                "S-1", signer="B", signer_source="free_text", leave_undecided=True
            )

        threads = [threading.Thread(target=decide, args=(sha,)) for sha in cells]
        threads.append(threading.Thread(target=sign))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        report = records.sample("S-1")
        assert report.status == "final"
        assert outcomes.count("stored") == len(report.decisions)
        assert outcomes.count("stored") + outcomes.count("refused") == 40
        assert records.sign_offs.verify("S-1").verdict == "matches"
    finally:
        records.close()


def test_sign_offs_are_append_only_like_every_sample_record(tmp_path):
    import time

    records = ReviewRecords(tmp_path / "audit.sqlite3")
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    records.sign_offs.sign_off("S-1", signer="B", signer_source="free_text")
    records.close()
    engine = records_db.create_engine(records_db.sqlite_url(tmp_path / "audit.sqlite3"))
    table = records_db.sample_sign_offs
    with pytest.raises(sa.exc.DBAPIError, match="append only"), engine.begin() as connection:
        connection.execute(table.update().values(signer="Mallory"))
    with pytest.raises(sa.exc.DBAPIError, match="append only"), engine.begin() as connection:
        connection.execute(table.delete())
    old = time.time() - (records_db.MIN_RETENTION_DAYS + 1) * 86_400
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            {
                "time": old,
                "sample_id": "S-0",
                "signer": "B",
                "signer_source": "free_text",
                "cells": 0,
                "undecided_cells": 0,
                "last_decision_id": 0,
                "content_sha256": "0" * 64,
                "rows_sha256": "{}",
            },
        )
    with engine.begin() as connection:
        assert connection.execute(table.delete().where(table.c.time < old + 1)).rowcount == 1
    engine.dispose()
