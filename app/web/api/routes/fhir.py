"""A sample for the lab's information system: a FHIR R4 Bundle (DiagnosticReport, Observations,
Devices), built and validated by app/rendering/fhir_report.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.core.domain.samples import SampleReport
from app.core.manifest import card_sha256
from app.core.model_registry import ModelRegistry
from app.rendering.fhir_report import MEDIA_TYPE, sample_bundle
from app.rendering.lab_results import ModelDevice
from app.web.api.bodies import ErrorResponse
from app.web.api.deps import RegistryDep, ReviewRecordsDep, SampleIdPathDep, SettingsDep
from app.web.api.routes.samples import sample_answer
from app.web.model_card_view import human_model_name

router = APIRouter(prefix="/samples", tags=["review"])


def model_devices(report: SampleReport, registry: ModelRegistry) -> list[ModelDevice]:
    """The models that scored the sample's cells; one no longer served keeps its id and
    version, its card's checksum unknown."""
    devices = []
    for model_id, version in sorted({(p.model_id, p.model_version) for p in report.predictions}):
        served = registry.models.get(model_id)
        same = served is not None and served.manifest.version == version
        devices.append(
            ModelDevice(
                id=model_id,
                version=version,
                name=human_model_name(served.manifest) if same and served else model_id,
                card_sha256=card_sha256(served.model_dir) if same and served else "unknown",
            )
        )
    return devices


@router.get(
    "/{sample_id}/fhir",
    response_class=Response,
    responses={
        200: {
            "content": {"application/fhir+json": {}},
            "description": "A FHIR R4 (4.0.1) Bundle of type collection: one DiagnosticReport "
            "(status preliminary, final or amended), its Observations and a Device per model.",
        },
        404: {"model": ErrorResponse, "description": "no record names this sample"},
    },
)
async def sample_fhir(
    sample_id: SampleIdPathDep,
    records: ReviewRecordsDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> Response:
    """The sample as a FHIR R4 Bundle: no file name and no person's name but the signer's."""

    def build() -> str:
        report = sample_answer(sample_id, records, registry)
        bundle = sample_bundle(
            report,
            model_devices(report, registry),
            now=datetime.fromtimestamp(time.time(), UTC),
            identifier_system=settings.fhir_sample_id_system,
        )
        return bundle.model_dump_json()

    return Response(await run_in_threadpool(build), media_type=MEDIA_TYPE)
