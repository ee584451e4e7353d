"""Audit rows say whether their request was answered.

Revision ID: 0004
Revises: 0003
A request's audit rows are kept (journal fsync'd) before its answer goes out; a request then
refused with 503 (its sample could not be recorded, or its rows could not be made durable in
time) was answered nothing, yet its rows said otherwise. `predictions.outcome` is `answered`
(every earlier row) or `not_answered`, and every count and export of the audit reads it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ALTER TABLE ADD COLUMN in place on both engines (SQLite never copies the table).
    op.get_bind().exec_driver_sql(
        "ALTER TABLE predictions ADD COLUMN outcome TEXT NOT NULL DEFAULT 'answered'"
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place.
    op.get_bind().exec_driver_sql("ALTER TABLE predictions DROP COLUMN outcome")
