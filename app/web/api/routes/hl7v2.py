"""A sample for a lab information system that takes HL7 v2: an ORU^R01 message with the FHIR
Bundle's content, built by app/rendering/hl7v2_report.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import hl7
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.rendering.hl7v2_report import MEDIA_TYPE, sample_oru_r01
from app.web.api.bodies import ErrorResponse
from app.web.api.deps import RegistryDep, ReviewRecordsDep, SampleIdPathDep
from app.web.api.routes.fhir import model_devices
from app.web.api.routes.samples import sample_answer

router = APIRouter(prefix="/samples", tags=["review"])


@router.get(
    "/{sample_id}/hl7v2",
    response_class=Response,
    responses={
        200: {
            "content": {MEDIA_TYPE: {}},
            "description": "An HL7 v2.5.1 ORU^R01 message (ER7, segments ended by CR, plain "
            "ASCII): one OBR (result status P, F or C), its NTEs and OBXs; no PID segment.",
        },
        404: {"model": ErrorResponse, "description": "no record names this sample"},
    },
)
async def sample_hl7v2(
    sample_id: SampleIdPathDep, records: ReviewRecordsDep, registry: RegistryDep
) -> Response:
    """The sample as an HL7 v2 ORU^R01 message: the same content as its FHIR Bundle."""

    def build() -> str:
        report = sample_answer(sample_id, records, registry)
        return sample_oru_r01(
            report,
            model_devices(report, registry),
            now=datetime.fromtimestamp(time.time(), UTC),
            control_id=hl7.util.generate_message_control_id(),
        )

    return Response(await run_in_threadpool(build), media_type=MEDIA_TYPE)
