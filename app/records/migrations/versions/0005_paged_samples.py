"""The sample list in pages: one row per sample, kept beside the records.

Revision ID: 0005
Revises: 0004
Listing samples read every cell and decision and counted them in Python: 200,000 cells took
1-2 s a page and 16 pages at once nearly a gigabyte. `sample_summaries` holds each sample's
counts (cells, reviewed cells, last change), rewritten with every write to the sample
(app/records/sample_summaries.py) and filled here from the rows there are, with the same rules:
each image once, withdrawn uploads left out, only decisions on live cells counted. A page is
then one query on its (last_change, sample_id) index. `review_decisions_cell` serves the latest
decision per cell that adaptation reads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The summaries of the rows already there, counted as app/records/sample_summaries.py counts.
FILL = """
WITH live AS (
    SELECT p.sample_id, p.image_sha256, max(p.time) AS scored
    FROM sample_predictions p
    WHERE NOT (p.client_request_id != '' AND EXISTS (
        SELECT 1 FROM sample_withdrawals w
        WHERE w.sample_id = p.sample_id AND w.client_request_id = p.client_request_id))
    GROUP BY p.sample_id, p.image_sha256
),
cells AS (
    SELECT sample_id, count(*) AS cells, max(scored) AS scored FROM live GROUP BY sample_id
),
decided AS (
    SELECT d.sample_id, count(DISTINCT d.image_sha256) AS reviewed, max(d.time) AS decided
    FROM review_decisions d
    JOIN live l ON l.sample_id = d.sample_id AND l.image_sha256 = d.image_sha256
    GROUP BY d.sample_id
)
INSERT INTO sample_summaries (sample_id, cells, reviewed, last_change)
SELECT c.sample_id, c.cells, coalesce(d.reviewed, 0),
       CASE WHEN d.decided > c.scored THEN d.decided ELSE c.scored END
FROM cells c LEFT JOIN decided d ON d.sample_id = c.sample_id
"""


def upgrade() -> None:
    op.create_table(
        "sample_summaries",
        sa.Column("sample_id", sa.Text, primary_key=True),
        sa.Column("cells", sa.Integer, nullable=False),
        sa.Column("reviewed", sa.Integer, nullable=False),
        sa.Column("last_change", sa.Float, nullable=False),
    )
    op.create_index("sample_summaries_order", "sample_summaries", ["last_change", "sample_id"])
    op.create_index(
        "review_decisions_cell", "review_decisions", ["sample_id", "image_sha256", "id"]
    )
    op.get_bind().exec_driver_sql(FILL)


def downgrade() -> None:
    op.drop_index("review_decisions_cell", table_name="review_decisions")
    op.drop_table("sample_summaries")
