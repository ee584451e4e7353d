"""A reviewer's decision on one scored image, as it is asked for and as the records keep it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.core.identities import REVIEWER_NAME_MAX, clean_reviewer_name

ReviewDecision = Literal["ALL", "HEM", "not_assessable"]


# Where a decision's reviewer name came from: typed by the client (no identity configured),
# the sign-on proxy's header, or the reviewer's own API key.
ReviewerSource = Literal["free_text", "sso_header", "reviewer_key"]


DURABLE_HELP = (
    "False only where the server keeps its records in memory (LEUKOLENS_RECORDS_IN_MEMORY, "
    "for demonstrations): they are lost when it stops."
)


class ReviewFields(BaseModel):
    """What a decision says: which image of which sample, the call, and a comment."""

    request_id: str = Field(min_length=1, max_length=128)
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sample_id: str = Field(
        min_length=1,
        description="The sample's lab number (LEUKOLENS_SAMPLE_ID_PATTERN), never a name.",
    )
    decision: ReviewDecision
    comment: str = Field("", max_length=2000)
    amendment: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Why this decision changes a signed-off sample: required once the sample "
        "is signed off (else 409), refused before (409). The sample becomes 'amended'.",
    )


class ReviewRequest(ReviewFields):
    """A reviewer's decision on one scored image; the image itself is never sent."""

    reviewer: str | None = Field(
        None,
        min_length=1,
        max_length=REVIEWER_NAME_MAX,
        description="Who decided: one person's name (no comma, no control character; "
        "surrounding spaces are dropped). Required where the server authenticates no "
        "reviewer; where it does (sign-on header, reviewer's own key), optional and, if sent, "
        "it must be the authenticated name (else 403).",
    )

    @field_validator("reviewer")
    @classmethod
    def _one_person(cls, reviewer: str | None) -> str | None:
        return None if reviewer is None else clean_reviewer_name(reviewer)


class ReviewRecord(ReviewFields):
    id: int
    time: datetime = Field(description="When it was recorded (ISO 8601, UTC).")
    reviewer: str = Field(description="The name the decision is recorded under.")
    reviewer_source: ReviewerSource = Field(
        "free_text",
        description="free_text: typed by the client, unverified (no identity configured, and "
        "every decision recorded before 0.3); sso_header: the lab's sign-on proxy named the "
        "user; reviewer_key: the reviewer's own API key did.",
    )
    durable: bool = Field(True, description=DURABLE_HELP)
