"""Withdrawals in the records: an upload is withdrawn by whom it belongs to, only while
it is there, never with a decided cell, and a withdrawal covers only what it found.

Before, `withdraw` filed whatever it was given: anyone's upload, an upload not yet recorded
(it vanished on arrival), a reviewed cell (its decision silently stopped counting)."""

import pytest

from app.core.identities import ANONYMOUS, SHARED_KEY, Identity
from app.records.review_records import UnknownPredictionError
from app.records.withdrawals import DecidedCellError, NotYourUploadError, UploadNotFoundError
from tests.app.records.test_review_records import SHA_A, SHA_B, prediction, review

ALICE = Identity("Dr Alice", "reviewer_key")
BOB = Identity("Dr Bob", "reviewer_key")
SHA_C = "c" * 64


def cells_of(records, sample_id="S-1"):
    report = records.sample(sample_id)
    return [] if report is None else [p.image_sha256 for p in report.predictions]


def upload(records, owner, sha, upload_id, request_id=None, sample_id="S-1"):
    scored = [prediction(sha, 0.9, "suggests_all", request_id=request_id or f"r-{upload_id}")]
    records.add_predictions(sample_id, scored, upload_id, owner)


def test_the_owner_withdraws_their_upload_and_the_record_names_who_uploaded(records):
    upload(records, ALICE, SHA_A, "u-kept")
    upload(records, ALICE, SHA_B, "u-cancelled")
    cell = records.sample("S-1").predictions[0]
    assert (cell.uploader, cell.uploader_source) == ("Dr Alice", "reviewer_key")
    records.withdraw("S-1", "u-cancelled", ALICE)
    assert cells_of(records) == [SHA_A]
    (summary,), _ = records.samples(limit=5)
    assert summary.cells == 1
    with pytest.raises(UploadNotFoundError):  # withdrawn already: nothing more is filed
        records.withdraw("S-1", "u-cancelled", ALICE)


@pytest.mark.parametrize("caller", [BOB, SHARED_KEY, ANONYMOUS, Identity("Dr Alice", "sso_header")])
def test_nobody_else_withdraws_it(records, caller):
    upload(records, ALICE, SHA_A, "u-1")
    with pytest.raises(NotYourUploadError, match="belongs to 'Dr Alice'"):
        records.withdraw("S-1", "u-1", caller)
    assert cells_of(records) == [SHA_A]


def test_a_withdrawal_filed_before_the_upload_is_refused_and_files_nothing(records):
    with pytest.raises(UploadNotFoundError, match="nothing was filed"):
        records.withdraw("S-1", "u-guessed", ALICE)
    upload(records, ALICE, SHA_A, "u-guessed")
    assert cells_of(records) == [SHA_A]


def test_a_decided_cell_is_never_withdrawn(records):
    upload(records, ALICE, SHA_A, "u-1")
    records.add_decision(review(SHA_A, "ALL", request_id="r-u-1"))
    with pytest.raises(DecidedCellError, match="not_assessable"):
        records.withdraw("S-1", "u-1", ALICE)
    report = records.sample("S-1")
    assert [p.image_sha256 for p in report.predictions] == [SHA_A]
    assert report.counts.decided == 1


def test_a_repeat_upload_of_a_decided_cell_may_go_the_cell_stays(records):
    upload(records, ALICE, SHA_A, "u-1")
    records.add_decision(review(SHA_A, "ALL", request_id="r-u-1"))
    upload(records, ALICE, SHA_A, "u-again")  # the same bytes again: a repeat
    records.withdraw("S-1", "u-again", ALICE)
    assert records.sample("S-1").counts.decided == 1


def test_a_decision_on_a_withdrawn_cell_is_refused(records):
    upload(records, ALICE, SHA_A, "u-1")
    records.withdraw("S-1", "u-1", ALICE)
    with pytest.raises(UnknownPredictionError):
        records.add_decision(review(SHA_A, "ALL", request_id="r-u-1"))


def test_only_the_callers_rows_and_only_those_already_recorded_are_covered(records):
    upload(records, ALICE, SHA_A, "u-shared-id", request_id="r1")
    upload(records, BOB, SHA_B, "u-shared-id", request_id="r2")  # Bob reused Alice's id
    records.withdraw("S-1", "u-shared-id", ALICE)
    assert cells_of(records) == [SHA_B]
    # Alice sends another upload under the id she withdrew: it is not withdrawn in advance
    upload(records, ALICE, SHA_C, "u-shared-id", request_id="r3")
    assert sorted(cells_of(records)) == sorted([SHA_B, SHA_C])
    # and an image dropped again after its withdrawal is a cell again, not a repeat
    again = [prediction(SHA_A, 0.9, "suggests_all", request_id="r4")]
    records.add_predictions("S-1", again, "u-later", ALICE)
    assert again[0].repeat_of is None


def test_uploads_recorded_before_owners_were_kept_cannot_be_withdrawn(records):
    """Rows of an earlier release say `unrecorded` (migration 0005): nobody is their owner."""
    legacy = Identity("", "unrecorded")
    upload(records, legacy, SHA_A, "u-old")
    for caller in (ANONYMOUS, SHARED_KEY, ALICE):
        with pytest.raises(NotYourUploadError, match="before uploads had owners"):
            records.withdraw("S-1", "u-old", caller)
    assert cells_of(records) == [SHA_A]
