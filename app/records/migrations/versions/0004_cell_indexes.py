"""Indexes that find a cell's scorings and its latest decision without reading the tables.

Revision ID: 0004
Revises: 0003
The local performance figures (app/records/performance_read.py) look up, for each scoring, the
latest decision on its cell and, for the rare repeat or withdrawn scoring, the cell's other
scorings. `review_decisions_cell` covers the lookup (cell, id, decision, reviewer), so the
table itself is never read for it; `sample_predictions_cell` finds a cell's scorings in order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "review_decisions_cell": (
        "review_decisions",
        ["sample_id", "image_sha256", "id", "decision", "reviewer"],
    ),
    "sample_predictions_cell": ("sample_predictions", ["sample_id", "image_sha256", "id"]),
}


def upgrade() -> None:
    bind = op.get_bind()
    for name, (table, columns) in INDEXES.items():
        if name not in {index["name"] for index in sa.inspect(bind).get_indexes(table)}:
            op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
