"""The audit's export: every answered (and refused) prediction as CSV, streamed.

Hashes, models and results, never an image or a file name. Read in slices as it is sent
(app/records/audit_export.py), so a year of rows costs the server what a day's does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from app.records.audit_export import audit_records
from app.rendering.result_table import audit_csv
from app.web.api.bodies import ErrorResponse
from app.web.api.deps import ReviewRecordsDep, SettingsDep

router = APIRouter(tags=["audit"])

AUDIT_OFF = "the audit log is switched off (LEUKOLENS_AUDIT_LOG=false)"


@router.get(
    "/audit.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "One row per answered image."},
        404: {"model": ErrorResponse, "description": AUDIT_OFF},
    },
)
async def export_audit(
    settings: SettingsDep,
    records: ReviewRecordsDep,
    since: Annotated[
        datetime | None,
        Query(description="Rows written from this time on (ISO 8601; UTC without an offset)."),
    ] = None,
    until: Annotated[datetime | None, Query(description="Rows written before this time.")] = None,
) -> StreamingResponse:
    """The audit's rows in the order they were written; `outcome` says `answered`, or
    `not_answered` for a request refused (503) after its row was kept: count only the first."""
    if not settings.audit_log:
        raise HTTPException(404, AUDIT_OFF)
    rows = audit_records(records.engine, since=seconds(since), until=seconds(until))
    return StreamingResponse(
        audit_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="leukolens-audit.csv"'},
    )


def seconds(moment: datetime | None) -> float | None:
    """Seconds since the epoch; a time without an offset is taken as UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
