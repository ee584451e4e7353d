"""The audit's rows as they are read back (the export, the tests): one answered (or refused)
image each, by its hash, never the image. They are written as part of a prediction's one record
(app/records/prediction_rows.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from app.records import records_db


@dataclass(frozen=True)
class AuditRecord:
    time: float
    request_id: str
    image_sha256: str
    model_id: str
    model_version: str
    probability_all: float
    label: str
    latency_ms: float
    client_request_id: str = ""
    item: int = 0
    outcome: str = records_db.ANSWERED
    """`not_answered` once the request was refused (503 or 409) after its row was kept."""


AUDIT_FIELDS = tuple(field.name for field in fields(AuditRecord))
COLUMNS = [records_db.predictions.c[name] for name in AUDIT_FIELDS]
