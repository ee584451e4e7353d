"""Audit rows say whether their request was answered.

Revision ID: 0007
Revises: 0006
A request's audit rows are kept (journal fsync'd) before its answer goes out; a request then
refused with 503 (its sample could not be recorded, or its rows could not be made durable in
time) was answered nothing, yet its rows said otherwise. `predictions.outcome` is `answered`
(every earlier row) or `not_answered`, and every count and export of the audit reads it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if "outcome" in {column["name"] for column in sa.inspect(bind).get_columns("predictions")}:
        return  # SQLite's DDL is not transactional: a run cut short may have added it
    # ALTER TABLE ADD COLUMN in place on both engines (SQLite never copies the table).
    bind.exec_driver_sql(
        "ALTER TABLE predictions ADD COLUMN outcome TEXT NOT NULL DEFAULT 'answered'"
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place.
    op.get_bind().exec_driver_sql("ALTER TABLE predictions DROP COLUMN outcome")
