"""A sample as a lab sees it: its scored images, the reviewers' decisions, the counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from app.api.reviews import ReviewRecordsDep
from app.schemas import ErrorResponse, SampleIdPattern, SampleReport

router = APIRouter(prefix="/samples", tags=["review"])


@router.get(
    "/{sample_id}",
    response_model=SampleReport,
    responses={404: {"model": ErrorResponse, "description": "no image scored for this sample"}},
)
def get_sample(
    sample_id: Annotated[str, Path(pattern=SampleIdPattern)], records: ReviewRecordsDep
) -> SampleReport:
    report = records.sample(sample_id)
    if report is None:
        raise HTTPException(404, f"no image was scored for sample {sample_id!r}")
    return report
