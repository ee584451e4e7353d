"""Signing a sample off, and checking later that it is still what was signed.

The signer is the deployment's authenticated reviewer (sign-on header or own key, as for
decisions: app/web/reviewer_identity.py), or the typed name on a server that authenticates
none. A sign-off is refused (409) while a cell is undecided unless the body says to leave them,
and when nothing changed since the last one.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from app.core.domain.samples import SignOffRecord
from app.core.identities import REVIEWER_NAME_MAX, clean_reviewer_name
from app.records.sample_digest import Verification
from app.web.api.bodies import ErrorResponse
from app.web.api.deps import ReviewerDep, ReviewRecordsDep, SampleIdPathDep
from app.web.reviewer_identity import who_decided

router = APIRouter(prefix="/samples", tags=["review"])


class SignOffRequest(BaseModel):
    comment: str = Field("", max_length=2000)
    undecided_cells: Literal["refuse", "leave"] = Field(
        "refuse",
        description="refuse (default): a sample with an undecided cell is not signed off (409); "
        "leave: sign it off as it is, the report stating how many cells were left undecided.",
    )
    reviewer: str | None = Field(
        None,
        min_length=1,
        max_length=REVIEWER_NAME_MAX,
        description="Who signs: one person's name, as for a decision. Required where the "
        "server authenticates no reviewer; where it does, optional and, if sent, it must be the "
        "authenticated name (else 403).",
    )

    @field_validator("reviewer")
    @classmethod
    def _one_person(cls, reviewer: str | None) -> str | None:
        return None if reviewer is None else clean_reviewer_name(reviewer)


@router.post(
    "/{sample_id}/sign-off",
    response_model=SignOffRecord,
    status_code=201,
    responses={
        401: {"model": ErrorResponse, "description": "no authenticated reviewer"},
        403: {
            "model": ErrorResponse,
            "description": "the shared key (it names nobody), or a 'reviewer' other than the "
            "authenticated one",
        },
        404: {"model": ErrorResponse, "description": "no record names this sample"},
        409: {
            "model": ErrorResponse,
            "description": "a cell is undecided (and the body does not leave it), or the sample "
            "is final and nothing changed since",
        },
    },
)
async def sign_off(
    sample_id: SampleIdPathDep,
    body: SignOffRequest,
    records: ReviewRecordsDep,
    reviewer: ReviewerDep,
) -> SignOffRecord:
    """Sign the sample off: it becomes final, bound to the SHA-256 of what was signed. A
    decision after it must carry an amendment reason; a second sign-off makes it final again."""
    signer = who_decided(body.reviewer, reviewer)
    return await run_in_threadpool(
        lambda: records.sign_offs.sign_off(
            sample_id,
            signer=signer.name,
            signer_source=signer.source,
            comment=body.comment,
            leave_undecided=body.undecided_cells == "leave",
        )
    )


@router.get(
    "/{sample_id}/verification",
    response_model=Verification,
    responses={404: {"model": ErrorResponse, "description": "no record names this sample"}},
)
async def verify(sample_id: SampleIdPathDep, records: ReviewRecordsDep) -> Verification:
    """Recompute what each sign-off signed from the records as they are now: whether it still
    matches, naming every row that changed, vanished or was slipped in, however it was done."""
    return await run_in_threadpool(records.sign_offs.verify, sample_id)
