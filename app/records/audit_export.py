"""The audit read out whole: every row, in slices, however long the record.

An export of a year of audit rows must cost the server what a day's does: the rows are read in
slices of EXPORT_ROWS by their id (a keyset, never OFFSET), each slice in a short read of its
own, and handed on as they come, so that neither the process nor the database holds the whole
record at once. Every row carries its outcome (`answered`, or `not_answered` for a request
refused 503 after its row was kept).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from app.records import records_db
from app.records.audit_rows import COLUMNS, AuditRecord

EXPORT_ROWS = 1_000
PREDICTIONS = records_db.predictions


def audit_records(
    engine: sa.Engine, *, since: float | None = None, until: float | None = None
) -> Iterator[AuditRecord]:
    """The rows written from `since` to before `until` (seconds since the epoch), in the
    order they were written."""
    last_id = 0
    while True:
        query = sa.select(PREDICTIONS.c.id, *COLUMNS).where(PREDICTIONS.c.id > last_id)
        if since is not None:
            query = query.where(PREDICTIONS.c.time >= since)
        if until is not None:
            query = query.where(PREDICTIONS.c.time < until)
        with engine.connect() as connection:
            rows = connection.execute(query.order_by(PREDICTIONS.c.id).limit(EXPORT_ROWS)).all()
        if not rows:
            return
        for row in rows:
            yield AuditRecord(*row[1:])
        last_id = rows[-1][0]
