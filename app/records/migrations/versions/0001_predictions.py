"""The prediction audit table.

Revision ID: 0001
Revises:
Audit files written before Alembic (by the first releases) already hold the table, perhaps
without the later columns: they are adopted as they are and gain what they lack.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def later_columns() -> list[sa.Column[object]]:
    """Columns added after the first release (fresh objects: a Column joins one table)."""
    return [
        sa.Column("client_request_id", sa.Text, nullable=False, server_default=""),
        sa.Column("item", sa.Integer, nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("predictions"):
        op.create_table(
            "predictions",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.Float, nullable=False),
            sa.Column("request_id", sa.Text, nullable=False),
            sa.Column("image_sha256", sa.Text, nullable=False),
            sa.Column("model_id", sa.Text, nullable=False),
            sa.Column("model_version", sa.Text, nullable=False),
            sa.Column("probability_all", sa.Float, nullable=False),
            sa.Column("label", sa.Text, nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=False),
            *later_columns(),
            sqlite_autoincrement=True,
        )
    else:
        present = {column["name"] for column in inspector.get_columns("predictions")}
        for column in later_columns():
            if column.name not in present:
                op.add_column("predictions", column)
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("predictions")}
    if "predictions_time" not in indexes:
        op.create_index("predictions_time", "predictions", ["time"])
    if "predictions_key" not in indexes:
        op.create_index("predictions_key", "predictions", ["request_id", "item"], unique=True)


def downgrade() -> None:
    op.drop_table("predictions")
