"""A decision sent again under its Idempotency-Key is answered with its first record.

A page whose answer was lost (a timeout, a dropped connection) cannot know whether the server
stored its decision; it sends it again under the same key. The key is kept beside the record
with a digest of what was recorded (the decision as stored: its fields, the reviewer's name and
where the name came from, and an amendment's reason where it has one). The same key with the
same decision is that record again, nothing new stored; the same key with anything else is a
conflict, never a silent overwrite.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from app.records import records_db

DECISIONS = records_db.review_decisions
FINGERPRINTED = (
    "sample_id",
    "request_id",
    "image_sha256",
    "decision",
    "reviewer",
    "comment",
    "reviewer_source",
)


class IdempotencyConflictError(ValueError):
    """The key was used for another decision."""


def fingerprint(fields: dict[str, Any]) -> str:
    fingerprinted = {name: fields[name] for name in FINGERPRINTED}
    if fields.get("amendment") is not None:  # absent otherwise: earlier keys keep their digest
        fingerprinted["amendment"] = fields["amendment"]
    canonical = json.dumps(fingerprinted, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def earlier_record(
    connection: Connection, idempotency_key: str, request_fingerprint: str
) -> Row[Any] | None:
    """The decision first recorded under the key, if any; a conflict if it differs."""
    row = connection.execute(
        sa.select(DECISIONS).where(DECISIONS.c.idempotency_key == idempotency_key)
    ).first()
    if row is not None and row.request_fingerprint != request_fingerprint:
        raise IdempotencyConflictError(
            "this Idempotency-Key was already used for another decision (another cell, call, "
            "comment, amendment reason or reviewer): nothing was recorded; send a new key for a "
            "new decision"
        )
    return row
