"""A sample as a lab sees it: its scored images, the reviewers' decisions, the counts, the share.

Samples live in the records' one database, so any replica, tab, browser or reviewer reads the
same sample; the browser's own store is only a cache of it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from app.core.blast_share import sample_blast_share, sample_score
from app.core.domain.samples import SampleReport
from app.core.manifest import ModelManifest
from app.core.model_registry import ModelRegistry
from app.core.sample_headline import sample_headline
from app.records.review_records import ReviewRecords
from app.records.withdrawals import DecidedCellError, NotYourUploadError, UploadNotFoundError
from app.web.api.bodies import ErrorResponse, SampleList
from app.web.api.deps import (
    CallerDep,
    RecordReadsDep,
    RegistryDep,
    ReviewRecordsDep,
    SampleIdPathDep,
)

MAX_OFFSET = 2**31 - 1
router = APIRouter(prefix="/samples", tags=["review"])


class Withdrawal(BaseModel):
    client_request_id: str = Field(
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="The X-Request-ID the page sent with the upload it cancelled (the form the "
        "server keeps: letters, digits, . _ -, up to 64).",
    )


@router.get("", response_model=SampleList)
async def list_samples(
    records: ReviewRecordsDep,
    reads: RecordReadsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    # The page is read with OFFSET in SQL: a number both engines take (no list comes near it).
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> SampleList:
    """Every sample, the most recently changed first: to reopen one in any browser."""
    summaries, total = await reads.run(records.samples, limit=limit, offset=offset)
    return SampleList(
        samples=summaries, total=total, limit=limit, offset=offset, durable=records.durable
    )


@router.get(
    "/{sample_id}",
    response_model=SampleReport,
    responses={404: {"model": ErrorResponse, "description": "no record names this sample"}},
)
async def get_sample(
    sample_id: SampleIdPathDep,
    records: ReviewRecordsDep,
    registry: RegistryDep,
    reads: RecordReadsDep,
) -> SampleReport:
    """The sample's images (each once), decisions and withdrawals; its status (preliminary,
    final, amended) with its sign-offs and amendments; its headline (the reviewer-confirmed
    share, saying what it counts); and the model's share of blast-like cells (corrected for
    its errors on patients it never saw, with a 95% interval): a research aid, not a
    diagnosis."""
    # On the readers' thread (app/web/record_reads.py): a crowd of pages takes one core at most.
    return await reads.run(sample_answer, sample_id, records, registry)


def sample_answer(sample_id: str, records: ReviewRecords, registry: ModelRegistry) -> SampleReport:
    """The sample answer every export is made from (JSON, FHIR); 404 when no record names it."""
    report = records.sample(sample_id)
    if report is None:
        raise HTTPException(404, f"no image was scored for sample {sample_id!r}")

    def card_for(model_id: str) -> ModelManifest | None:
        model = registry.models.get(model_id)
        return model.manifest if model is not None else None

    report.headline = sample_headline(report.predictions, report.decisions)
    report.blast_share = sample_blast_share(report.predictions, report.decisions, card_for)
    report.sample_score = sample_score(report.predictions)
    return report


@router.post(
    "/{sample_id}/withdrawals",
    status_code=204,
    responses={
        403: {"model": ErrorResponse, "description": "the upload belongs to someone else"},
        404: {"model": ErrorResponse, "description": "no such upload in the sample (now)"},
        409: {
            "model": ErrorResponse,
            "description": "a cell of the upload has a decision, or the sample is signed off",
        },
    },
)
async def withdraw_upload(
    sample_id: SampleIdPathDep,
    withdrawal: Withdrawal,
    records: ReviewRecordsDep,
    caller: CallerDep,
) -> None:
    """Whoever uploaded it (the same reviewer's key, signed-in user, shared key, or anonymous
    client) takes a cancelled upload back out of the sample: its answers recorded so far, and
    nothing recorded later. A record of its own, never a deletion; the audit keeps every
    answer. A cell with a stored decision stays: record "not_assessable" on it instead.
    Refused (409) once the sample is signed off."""
    try:
        await run_in_threadpool(records.withdraw, sample_id, withdrawal.client_request_id, caller)
    except UploadNotFoundError as error:
        raise HTTPException(404, str(error)) from error
    except NotYourUploadError as error:
        raise HTTPException(403, str(error)) from error
    except DecidedCellError as error:
        raise HTTPException(409, str(error)) from error
