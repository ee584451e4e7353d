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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from app.core.domain.samples import BlastShare, SampleReport
from app.core.sample_headline import LABEL

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json; fhirVersion=4.0"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# The product's own codes for what no LOINC code says without claiming a blast count.
CODES = "urn:leukolens:fhir:observation"
SIGNED_CONTENT_EXTENSION = "urn:leukolens:fhir:signed-content-sha256"
MODEL_ID_SYSTEM = "urn:leukolens:model-id"
CARD_SHA256_SYSTEM = "urn:leukolens:model-card-sha256"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NAMESPACE = uuid.UUID("5b7f1c1e-2f0a-4f7e-9a59-6c2f1d0e8b3a")
REPORT_CODE = {
    "coding": [
        {
            "system": LOINC,
            "code": "5909-7",
            "display": "Blood smear finding [Identifier] in Blood by Light microscopy",
        }
    ],
    "text": "LeukoLens review of white-blood-cell images, ALL-like (blast-like) versus normal "
    "cells: a research and screening aid, not a diagnosis",
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


@dataclass(frozen=True)
class ModelDevice:
    id: str
    version: str
    name: str
    card_sha256: str


def _code(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": CODES, "code": code, "display": text}], "text": text}


def _percent(share: float) -> dict[str, Any]:
    return {"value": round(100 * share, 1), "unit": "%", "system": UCUM, "code": "%"}


def _absent(code: str) -> dict[str, Any]:
    return {"coding": [{"system": ABSENT, "code": code}]}


def conclusion(report: SampleReport) -> str:
    headline = report.headline
    assert headline is not None
    cells = len(report.predictions)
    left = f", {headline.undecided} undecided" if headline.undecided else ""
    return (
        f"{LABEL}: {headline.text} ({cells} cell{'' if cells == 1 else 's'} in the sample"
        f"{left}); a research and screening aid, not a diagnosis."
    )


def issued(report: SampleReport) -> datetime | None:
    """When this version of the result was made available: its latest sign-off when final,
    its latest amendment when amended, its latest record while preliminary."""
    if report.status == "final" and report.signed_off is not None:
        return report.signed_off.time
    if report.status == "amended" and report.amendments:
        return report.amendments[-1].time
    times = [p.time for p in report.predictions] + [d.time for d in report.decisions]
    times += [w.time for w in report.withdrawals]
    return max(times, default=None)


def _estimate(
    share: BlastShare | None, status: str, device: str | None, models: str
) -> Observation:
    fields: dict[str, Any] = {
        "status": status,
        "category": [LABORATORY],
        "code": _code(
            "model-estimated-blast-like-share",
            "Model-estimated share of blast-like cells, corrected for its error rates",
        ),
        "method": {
            "text": f"LeukoLens model {models}: the cells it called, corrected for its error "
            "rates on people it never saw (Rogan-Gladen), 95% interval by Monte Carlo"
        },
    }
    if device is not None:
        fields["device"] = {"reference": device}
    if share is not None and share.ci_low is not None and share.ci_high is not None:
        fields["component"] = [
            {"code": _code(f"ci-{end}", f"95% interval, {end} end"), "valueQuantity": _percent(v)}
            for end, v in (("low", share.ci_low), ("high", share.ci_high))
        ]
    if share is not None and share.corrected is not None and not share.too_wide:
        fields["valueQuantity"] = _percent(share.corrected)
    else:
        fields["dataAbsentReason"] = _absent("unknown")
        why = share.note if share is not None and share.note else ""
        if share is not None and share.too_wide:
            why = (
                f"not readable: its 95% interval is wider than {100 * share.readable_width:.0f} "
                "percentage points"
            )
        fields["note"] = [{"text": why or "no estimate: no assessable cell"}]
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
    reviewed = headline.assessable_reviewed + headline.not_assessable
    counts = [
        ("cells-in-sample", "Cells in the sample (each image once)", len(report.predictions)),
        ("cells-reviewed", "Cells reviewed", reviewed),
        ("cells-confirmed-all-like", "Cells confirmed ALL-like", headline.confirmed_all_like),
        ("cells-confirmed-normal", "Cells confirmed normal", headline.confirmed_normal),
        ("cells-not-assessable", "Cells marked not assessable", headline.not_assessable),
    ]
    observations: list[tuple[str, Observation]] = [
        (code, Observation(**common, code=_code(code, text), valueInteger=value))
        for code, text, value in counts
    ]
    share_fields: dict[str, Any] = {
        **common,
        "code": _code("reviewer-confirmed-all-like-share", LABEL),
    }
    if headline.share is not None:
        share_fields["valueQuantity"] = _percent(headline.share)
    else:
        share_fields["dataAbsentReason"] = _absent("not-applicable")
        share_fields["note"] = [{"text": headline.text}]
    observations.append(("reviewer-confirmed-all-like-share", Observation(**share_fields)))
    device_entries = [(f"device/{d.id}/{d.version}", _device(d)) for d in devices]
    models = ", ".join(f"{d.id} version {d.version}" for d in devices) or "(none)"
    estimate = _estimate(
        report.blast_share,
        status,
        full_url(device_entries[0][0]) if len(devices) == 1 else None,
        models,
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
