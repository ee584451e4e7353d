"""A sample as a FHIR R4 (4.0.1) Bundle for a laboratory information system.

One `collection` Bundle: a DiagnosticReport (status as the sample's life cycle, the LOINC code
of a blood smear review, the sample id as its identifier, the signer as performer, the headline
as conclusion, the SHA-256 of what was signed as an extension), its Observations (cells,
reviewer-confirmed ALL-like and normal cells, cells marked not assessable, the reviewer-confirmed
share in UCUM `%`, the model's corrected estimate with its 95% interval or why it is not
readable) and a Device per model (id, version, card sha256). Built from fhir.resources' R4B
models, which validate every element as it is made (R4B changed no resource used here).

Nothing in it names a file or a person other than the signer: reviewers' names, comments and
amendment reasons stay in the sample answer and the printed report, where access is the lab's.
Resource ids are UUIDs derived from the sample and its latest sign-off, so that fetching the
same state twice gives the same Bundle but for its timestamp.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from app.core.domain.samples import BlastShare, SampleReport
from app.rendering.lab_results import (
    ESTIMATE_CODE,
    ESTIMATE_TEXT,
    REPORT_LOINC,
    REPORT_LOINC_TEXT,
    REPORT_TEXT,
    SHARE_CODE,
    SHARE_TEXT,
    ModelDevice,
    cell_counts,
    conclusion,
    estimate_interval,
    estimate_method,
    issued,
    readable_estimate,
    why_no_estimate,
)

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json; fhirVersion=4.0"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# The system of the product's own codes (lab_results.py) for what no LOINC code says.
CODES = "urn:leukolens:fhir:observation"
SIGNED_CONTENT_EXTENSION = "urn:leukolens:fhir:signed-content-sha256"
MODEL_ID_SYSTEM = "urn:leukolens:model-id"
CARD_SHA256_SYSTEM = "urn:leukolens:model-card-sha256"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NAMESPACE = uuid.UUID("5b7f1c1e-2f0a-4f7e-9a59-6c2f1d0e8b3a")
REPORT_CODE = {
    "coding": [{"system": LOINC, "code": REPORT_LOINC, "display": REPORT_LOINC_TEXT}],
    "text": REPORT_TEXT,
}
HEMATOLOGY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
            "code": "HM",
            "display": "Hematology",
        }
    ]
}
LABORATORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
            "display": "Laboratory",
        }
    ]
}


def _code(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": CODES, "code": code, "display": text}], "text": text}


def _percent(share: float) -> dict[str, Any]:
    return {"value": round(100 * share, 1), "unit": "%", "system": UCUM, "code": "%"}


def _absent(code: str) -> dict[str, Any]:
    return {"coding": [{"system": ABSENT, "code": code}]}


def _estimate(
    share: BlastShare | None, status: str, device: str | None, devices: Sequence[ModelDevice]
) -> Observation:
    fields: dict[str, Any] = {
        "status": status,
        "category": [LABORATORY],
        "code": _code(ESTIMATE_CODE, ESTIMATE_TEXT),
        "method": {"text": estimate_method(devices)},
    }
    if device is not None:
        fields["device"] = {"reference": device}
    interval = estimate_interval(share)
    if interval is not None:
        fields["component"] = [
            {"code": _code(f"ci-{end}", f"95% interval, {end} end"), "valueQuantity": _percent(v)}
            for end, v in zip(("low", "high"), interval, strict=True)
        ]
    value = readable_estimate(share)
    if value is not None:
        fields["valueQuantity"] = _percent(value)
    else:
        fields["dataAbsentReason"] = _absent("unknown")
        fields["note"] = [{"text": why_no_estimate(share)}]
    return Observation(**fields)


def sample_bundle(
    report: SampleReport,
    devices: Sequence[ModelDevice],
    *,
    now: datetime,
    identifier_system: str,
) -> Bundle:
    headline = report.headline
    assert headline is not None
    version = report.signed_off.id if report.signed_off is not None else 0
    seed = f"{report.sample_id}/{report.status}/{version}/{len(report.decisions)}"

    def full_url(role: str) -> str:
        return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{seed}/{role}')}"

    status = report.status
    when = issued(report)
    common: dict[str, Any] = {"status": status, "category": [LABORATORY]}
    if when is not None:
        common["issued"] = when
    observations: list[tuple[str, Observation]] = [
        (c.code, Observation(**common, code=_code(c.code, c.text), valueInteger=c.value))
        for c in cell_counts(report)
    ]
    share_fields: dict[str, Any] = {
        **common,
        "code": _code(SHARE_CODE, SHARE_TEXT),
    }
    if headline.share is not None:
        share_fields["valueQuantity"] = _percent(headline.share)
    else:
        share_fields["dataAbsentReason"] = _absent("not-applicable")
        share_fields["note"] = [{"text": headline.text}]
    observations.append((SHARE_CODE, Observation(**share_fields)))
    device_entries = [(f"device/{d.id}/{d.version}", _device(d)) for d in devices]
    estimate = _estimate(
        report.blast_share,
        status,
        full_url(device_entries[0][0]) if len(devices) == 1 else None,
        devices,
    )
    if when is not None:
        estimate.issued = when
    observations.append(("model-estimate", estimate))
    diagnostic: dict[str, Any] = {
        "status": status,
        "category": [HEMATOLOGY],
        "code": REPORT_CODE,
        "identifier": [{"system": identifier_system, "value": report.sample_id}],
        "result": [{"reference": full_url(role)} for role, _ in observations],
        "conclusion": conclusion(report),
    }
    if when is not None:
        diagnostic["issued"] = when
    if report.signed_off is not None:
        diagnostic["performer"] = [{"display": report.signed_off.by}]
        diagnostic["extension"] = [
            {"url": SIGNED_CONTENT_EXTENSION, "valueString": report.signed_off.content_sha256}
        ]
    entries = [("report", DiagnosticReport(**diagnostic)), *observations, *device_entries]
    return Bundle(
        type="collection",
        timestamp=now,
        entry=[
            BundleEntry(fullUrl=full_url(role), resource=resource) for role, resource in entries
        ],
    )


def _device(device: ModelDevice) -> Device:
    return Device(
        identifier=[
            {"system": MODEL_ID_SYSTEM, "value": device.id},
            {"system": CARD_SHA256_SYSTEM, "value": device.card_sha256},
        ],
        deviceName=[{"name": device.name, "type": "model-name"}],
        version=[{"value": device.version}],
        type={"text": "Image analysis software: a research and screening aid, not a diagnosis"},
    )
