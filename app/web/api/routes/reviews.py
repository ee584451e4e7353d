"""Reviewers' decisions on scored images: append only, never holding the image.

The name a decision is recorded under is the deployment's authenticated reviewer where it has
one (app/web/reviewer_identity.py); the record says where the name came from. A decision sent
again under its Idempotency-Key (a retry after a lost answer) is answered with its first record
and stored once (app/records/decision_replays.py)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from fastapi.concurrency import run_in_threadpool

from app.core.domain.reviews import ReviewRecord, ReviewRequest
from app.records.decision_replays import IdempotencyConflictError
from app.records.review_records import UnknownPredictionError
from app.web.api.bodies import ErrorResponse
from app.web.api.deps import (
    IdempotencyKeyHeader,
    ReviewerDep,
    ReviewRecordsDep,
    SampleIdsDep,
    checked_sample_id,
)
from app.web.reviewer_identity import who_decided

router = APIRouter(tags=["review"])
REPLAYED_HEADER = "Idempotent-Replayed"


@router.post(
    "/reviews",
    response_model=ReviewRecord,
    status_code=201,
    responses={
        401: {"model": ErrorResponse, "description": "no authenticated reviewer"},
        403: {
            "model": ErrorResponse,
            "description": "identity header from an untrusted address, a key that names no "
            "reviewer, or a 'reviewer' other than the authenticated one",
        },
        409: {
            "model": ErrorResponse,
            "description": "the Idempotency-Key was used for another decision; or the "
            "sample is signed off and the decision carries no 'amendment' reason, or it "
            "carries one while the sample is not signed off",
        },
        422: {
            "model": ErrorResponse,
            "description": "unknown (or withdrawn) prediction, a bad field, or a reviewer name "
            "that is blank, holds a comma or a control character",
        },
    },
)
async def add_review(
    review: ReviewRequest,
    records: ReviewRecordsDep,
    reviewer: ReviewerDep,
    sample_ids: SampleIdsDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReviewRecord:
    """Record a decision (ALL, HEM or not assessable) on an image scored for a sample. Once the
    sample is signed off, a decision must say why it changes it (`amendment`)."""
    checked_sample_id(sample_ids, review.sample_id, ("body", "sample_id"))
    decided_by = who_decided(review.reviewer, reviewer)
    try:
        record, replayed = await run_in_threadpool(
            records.add_decision_once,
            review.model_copy(update={"reviewer": decided_by.name}),
            reviewer_source=decided_by.source,
            idempotency_key=idempotency_key,
        )
    except UnknownPredictionError as error:
        raise HTTPException(422, str(error)) from error
    except IdempotencyConflictError as error:
        raise HTTPException(409, str(error)) from error
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return record
