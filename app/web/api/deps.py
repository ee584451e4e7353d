"""Typed dependencies: what a route needs, taken from the running application's state.

They are `async def` although they never await: FastAPI runs a plain `def` dependency on a
worker thread, a thread hop per dependency per request for an attribute lookup."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Header, HTTPException, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError

from app.core.identities import Identity
from app.core.model_registry import ModelRegistry
from app.core.sample_ids import SampleIdPolicy
from app.inference.service import PredictionService
from app.records.review_records import ReviewRecords
from app.settings import Settings
from app.web.middleware.api_key import (
    API_KEY_HEADER,
    UNAUTHORISED_DETAIL,
    accepted_keys,
    api_key_header,
    matches_any,
)
from app.web.record_reads import RecordReads
from app.web.reviewer_identity import Reviewer, authenticated_reviewer, caller_identity

SAMPLE_ID_HELP = (
    "The sample's lab number (LEUKOLENS_SAMPLE_ID_PATTERN), never a patient's name or birth date."
)


# Starlette's app.state is untyped: each getter names what create_app put there.
async def get_service(request: Request) -> PredictionService:
    return cast(PredictionService, request.app.state.service)


async def get_registry(request: Request) -> ModelRegistry:
    return cast(ModelRegistry, request.app.state.service.registry)


async def get_settings_from_app(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_request_id(request: Request) -> str:
    return cast(str, request.state.request_id)


async def get_review_records(request: Request) -> ReviewRecords:
    return cast(ReviewRecords, request.app.state.review_records)


async def get_record_reads(request: Request) -> RecordReads:
    return cast(RecordReads, request.app.state.record_reads)


async def get_sample_ids(request: Request) -> SampleIdPolicy:
    return cast(SampleIdPolicy, request.app.state.sample_ids)


def checked_sample_id(policy: SampleIdPolicy, sample_id: str, where: tuple[str, ...]) -> str:
    """The one check of every sample id the API takes (query, path or body): refused with a
    422 like any other bad field, its message saying lab numbers only."""
    problem = policy.problem(sample_id)
    if problem is not None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": where, "msg": problem, "input": sample_id}]
        )
    return sample_id


async def sample_id_query(
    request: Request,
    sample_id: Annotated[
        str | None,
        Query(
            description="Sample the images belong to; recorded beside the audit for review "
            f"(GET /api/v1/samples/{{sample_id}}). {SAMPLE_ID_HELP}",
        ),
    ] = None,
) -> str | None:
    if sample_id is None:
        return None
    return checked_sample_id(request.app.state.sample_ids, sample_id, ("query", "sample_id"))


async def sample_id_path(
    request: Request, sample_id: Annotated[str, Path(description=SAMPLE_ID_HELP)]
) -> str:
    return checked_sample_id(request.app.state.sample_ids, sample_id, ("path", "sample_id"))


def require_api_key(
    request: Request, offered: Annotated[str | None, Security(api_key_header)]
) -> None:
    keys = accepted_keys(request.app.state.settings)
    if not keys:
        return
    if not matches_any(offered, keys):
        raise HTTPException(401, UNAUTHORISED_DETAIL, headers={"WWW-Authenticate": API_KEY_HEADER})


async def one_file_field(request: Request) -> None:
    """A second `file` would otherwise be dropped without a word; say so instead."""
    form = await request.form()  # parsed once: FastAPI reads the same cached form
    if len(form.getlist("file")) > 1:
        raise HTTPException(
            422, "send one image in the field 'file'; for several, use /api/v1/predict/batch"
        )


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,128}$",
        description="Any 1 to 128 visible ASCII characters, new for each decision (a UUID): "
        "sent again with the same decision, the first record is answered again and nothing new "
        "is stored; with another decision, 409.",
    ),
]

ServiceDep = Annotated[PredictionService, Depends(get_service)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ReviewRecordsDep = Annotated[ReviewRecords, Depends(get_review_records)]
RecordReadsDep = Annotated[RecordReads, Depends(get_record_reads)]
SampleIdsDep = Annotated[SampleIdPolicy, Depends(get_sample_ids)]
SampleIdQueryDep = Annotated[str | None, Depends(sample_id_query)]
SampleIdPathDep = Annotated[str, Depends(sample_id_path)]
ReviewerDep = Annotated[Reviewer | None, Depends(authenticated_reviewer)]
CallerDep = Annotated[Identity, Depends(caller_identity)]
ApiKeyDep = Depends(require_api_key)
OneFileFieldDep = Depends(one_file_field)
