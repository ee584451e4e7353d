"""A sample as a lab sees it: its scored images, the reviewers' decisions, the counts, the share."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from app.core.manifest import ModelManifest
from app.schemas import ErrorResponse, SampleIdPattern, SampleReport
from app.service.blast_share import sample_blast_share, sample_score
from app.web.api.deps import RegistryDep
from app.web.api.routes.reviews import ReviewRecordsDep

router = APIRouter(prefix="/samples", tags=["review"])


@router.get(
    "/{sample_id}",
    response_model=SampleReport,
    responses={404: {"model": ErrorResponse, "description": "no image scored for this sample"}},
)
def get_sample(
    sample_id: Annotated[str, Path(pattern=SampleIdPattern)],
    records: ReviewRecordsDep,
    registry: RegistryDep,
) -> SampleReport:
    """The sample's images and decisions, with its share of blast-like cells (corrected for the
    model's held-out errors, with a 95% interval) and its score: a research aid, not a diagnosis."""
    report = records.sample(sample_id)
    if report is None:
        raise HTTPException(404, f"no image was scored for sample {sample_id!r}")

    def card_for(model_id: str) -> ModelManifest | None:
        model = registry.models.get(model_id)
        return model.manifest if model is not None else None

    report.blast_share = sample_blast_share(report.predictions, report.decisions, card_for)
    report.sample_score = sample_score(report.predictions)
    return report
