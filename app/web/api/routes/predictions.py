"""Predictions for one image or a batch; a bad file in a batch never fails the others.

Each request's decoding and preprocessing runs under a time budget, and stops when its client
disconnects (see app/inference/budget.py). Routes pass the model id and the sample through: the
service refuses an unknown model, records each answer (joining its sample) before it goes out,
and the application's handlers turn domain errors into HTTP answers. The client's X-Request-ID
names the upload, so that its uploader, cancelling it, can withdraw its answers from the sample
(POST /api/v1/samples/{id}/withdrawals).
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response

from app.core.domain.outcomes import Outcome
from app.core.domain.predictions import Prediction
from app.core.identities import Identity
from app.core.sample_ids import SampleIdPolicy
from app.inference.budget import WorkBudget
from app.inference.prediction_path import Upload
from app.records.prediction_rows import SampleEntry
from app.rendering.result_table import result_row, results_writer
from app.web.api.bodies import BatchError, BatchItem, BatchResponse, ErrorResponse
from app.web.api.deps import (
    CallerDep,
    OneFileFieldDep,
    RequestIdDep,
    SampleIdQueryDep,
    SampleIdsDep,
    ServiceDep,
    SettingsDep,
)
from app.web.client_watch import unless_client_gone
from app.web.errors import as_status_and_reason, status_for

router = APIRouter(prefix="/predict", tags=["predictions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in {
        400: "undecodable image",
        413: "file or image too large, or too many files",
        415: "unsupported file type",
        409: "the sample_id names a signed-off sample: no new cell joins it",
        422: "missing or repeated field, or bad parameter (e.g. an unknown model id)",
        503: "too many requests in flight, or the answer could not be recorded; retry after "
        "the Retry-After header's seconds",
    }.items()
}

ModelQuery = Annotated[
    str | None, Query(description="Model id from /api/v1/models; default: the store's default.")
]
ViewsQuery = Annotated[
    bool, Query(description="Add PNG data URIs of the original, enhanced and cropped images.")
]
TtaQuery = Annotated[
    bool | None,
    Query(description="Average the 8 flips and quarter turns; default: the model card's choice."),
]
ExplainQuery = Annotated[bool, Query(description="Add a Grad-CAM heatmap of the decision.")]


def _sample(sample_id: str | None, uploader: Identity) -> SampleEntry | None:
    return None if sample_id is None else SampleEntry(sample_id, uploader)


def _warn(sample_ids: SampleIdPolicy, sample_id: str | None, answers: list[Outcome]) -> None:
    """An id whose letters could be a name is answered, each prediction saying so."""
    if sample_id is None:
        return
    warning = sample_ids.warning(sample_id)
    for answer in answers:
        if isinstance(answer, Prediction):
            answer.sample_id_warning = warning


async def _read(upload: UploadFile) -> Upload:
    return Upload(
        filename=upload.filename or "", data=await upload.read(), content_type=upload.content_type
    )


@router.post("", response_model=Prediction, responses=ERRORS, dependencies=[OneFileFieldDep])
async def predict(
    file: Annotated[UploadFile, File(description="One cell image: BMP, PNG, JPEG or TIFF.")],
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    request_id: RequestIdDep,
    sample_ids: SampleIdsDep,
    sample_id: SampleIdQueryDep,
    caller: CallerDep,
    model: ModelQuery = None,
    views: ViewsQuery = False,
    tta: TtaQuery = None,
    explain: ExplainQuery = False,
) -> Prediction:
    upload = await _read(file)
    budget = WorkBudget(settings.processing_budget_seconds)
    prediction = await unless_client_gone(
        service.predict(
            upload,
            model_id=model,
            request_id=request_id,
            views=views,
            tta=tta,
            explain=explain,
            budget=budget,
            sample=_sample(sample_id, caller),
        ),
        request.is_disconnected,
        budget,
    )
    _warn(sample_ids, sample_id, [prediction])
    return prediction


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV"}},
)
async def predict_batch(
    files: Annotated[list[UploadFile], File(description="Cell images, in order.")],
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    request_id: RequestIdDep,
    sample_ids: SampleIdsDep,
    sample_id: SampleIdQueryDep,
    caller: CallerDep,
    model: ModelQuery = None,
    tta: TtaQuery = None,
    format: Annotated[Literal["json", "csv"], Query(description="Response format.")] = "json",
    views: ViewsQuery = False,
    explain: Annotated[
        bool, Query(description="Add each image's Grad-CAM heatmap, where the model has one.")
    ] = False,
) -> BatchResponse | Response:
    if len(files) > settings.max_batch_files:
        raise HTTPException(
            413, f"{len(files)} files; at most {settings.max_batch_files} per batch"
        )
    uploads = [await _read(file) for file in files]
    # The budget is per file: each file after the first starts with all of it again (the
    # first also spends it waiting for a worker).
    budget = WorkBudget(settings.processing_budget_seconds)
    outcomes = await unless_client_gone(
        service.predict_batch(
            uploads,
            model_id=model,
            request_id=request_id,
            tta=tta,
            views=views,
            explain=explain,
            budget=budget,
            sample=_sample(sample_id, caller),
        ),
        request.is_disconnected,
        budget,
    )
    _warn(sample_ids, sample_id, outcomes)
    results = [
        BatchItem(filename=upload.filename, status="ok", prediction=outcome)
        if isinstance(outcome, Prediction)
        else BatchItem(
            filename=upload.filename,
            status="error",
            error=BatchError(status_code=status_for(outcome), detail=outcome.reason),
        )
        for upload, outcome in zip(uploads, outcomes, strict=True)
    ]
    if format == "csv":
        return Response(
            _as_csv([upload.filename for upload in uploads], outcomes),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="leukolens-results.csv"'},
        )
    return BatchResponse(results=results)


def _as_csv(names: list[str], outcomes: list[Outcome]) -> str:
    """The command line's layout, with each refusal's HTTP status, as the JSON gives it."""
    buffer = io.StringIO()
    writer = results_writer(buffer)
    for name, outcome in zip(names, outcomes, strict=True):
        writer.writerow(result_row(name, outcome, as_status_and_reason))
    return buffer.getvalue()
