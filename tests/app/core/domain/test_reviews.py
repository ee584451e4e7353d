"""A decision names one person and one image; what the records keep says where the name came
from."""

import pytest

from app.core.domain.reviews import ReviewRecord, ReviewRequest

SHA = "a" * 64


def test_a_typed_reviewer_is_trimmed_and_a_merged_name_refused():
    fields = {"request_id": "r", "image_sha256": SHA, "sample_id": "S-1", "decision": "ALL"}
    assert ReviewRequest(**fields, reviewer="  Dr A ").reviewer == "Dr A"
    assert ReviewRequest(**fields).reviewer is None
    with pytest.raises(ValueError, match="comma"):
        ReviewRequest(**fields, reviewer="Doe, Jane")


def test_an_image_is_named_by_its_sha256_only():
    with pytest.raises(ValueError, match="pattern"):
        ReviewRequest(request_id="r", image_sha256="cell.png", sample_id="S", decision="HEM")


def test_a_record_before_identities_were_kept_reads_as_free_text_and_durable():
    record = ReviewRecord(
        id=1,
        time="2024-01-01T00:00:00Z",
        reviewer="Dr A",
        request_id="r",
        image_sha256=SHA,
        sample_id="S-1",
        decision="not_assessable",
    )
    assert (record.reviewer_source, record.durable) == ("free_text", True)
