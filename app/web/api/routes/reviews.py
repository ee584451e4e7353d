"""Reviewers' decisions on scored images: append only, never holding the image."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.schemas import ErrorResponse, ReviewRecord, ReviewRequest
from app.service.review_records import UnknownPredictionError
from app.web.api.deps import ReviewRecordsDep

router = APIRouter(tags=["review"])


@router.post(
    "/reviews",
    response_model=ReviewRecord,
    status_code=201,
    responses={422: {"model": ErrorResponse, "description": "unknown prediction or bad field"}},
)
def add_review(review: ReviewRequest, records: ReviewRecordsDep) -> ReviewRecord:
    """Record a decision (ALL, HEM or not assessable) on an image scored for a sample."""
    try:
        return records.add_decision(review)
    except UnknownPredictionError as error:
        raise HTTPException(422, str(error)) from error
