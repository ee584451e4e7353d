"""The sample list in pages: one row per sample, kept beside the records.

Revision ID: 0008
Revises: 0007
Listing samples read every cell and decision and counted them in Python: 200,000 cells took
1-2 s a page and 16 pages at once nearly a gigabyte. `sample_summaries` holds each sample's
counts (cells, reviewed cells, last change), rewritten with every write to the sample
(app/records/sample_summaries.py) and filled here from the rows there are, with the same rules:
each image once, withdrawn uploads left out (app/records/withdrawals.py), only decisions on live
cells counted. A page is then one query on its (last_change, sample_id) index.

The table is derived, not a record: on PostgreSQL every role that may append sample rows (the
app's least-privilege role) may rewrite it too (`python -m app.records migrate --grant-to`
grants the same).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The summaries of the rows already there, counted as app/records/sample_summaries.py counts.
FILL = """
WITH live AS (
    SELECT p.sample_id, p.image_sha256, max(p.time) AS scored
    FROM sample_predictions p
    WHERE NOT (p.client_request_id != '' AND EXISTS (
        SELECT 1 FROM sample_withdrawals w
        WHERE w.sample_id = p.sample_id AND w.client_request_id = p.client_request_id
          AND w.uploader_source = p.uploader_source AND w.uploader = p.uploader
          AND (w.through_id IS NULL OR p.id <= w.through_id)))
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


WRITERS = """
SELECT DISTINCT grantee FROM information_schema.role_table_grants
WHERE table_name = 'sample_predictions' AND privilege_type = 'INSERT'
  AND grantee != current_user AND grantee != 'PUBLIC'
"""


def upgrade() -> None:
    bind = op.get_bind()
    # SQLite's DDL is not transactional: a run cut short may have left the table or its index.
    if not sa.inspect(bind).has_table("sample_summaries"):
        op.create_table(
            "sample_summaries",
            sa.Column("sample_id", sa.Text, primary_key=True),
            sa.Column("cells", sa.Integer, nullable=False),
            sa.Column("reviewed", sa.Integer, nullable=False),
            sa.Column("last_change", sa.Float, nullable=False),
        )
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes("sample_summaries")}
    if "sample_summaries_order" not in indexes:
        op.create_index("sample_summaries_order", "sample_summaries", ["last_change", "sample_id"])
    bind.exec_driver_sql("DELETE FROM sample_summaries")
    bind.exec_driver_sql(FILL)
    if bind.dialect.name == "postgresql":
        quote = bind.dialect.identifier_preparer.quote
        for (role,) in bind.exec_driver_sql(WRITERS).all():
            bind.exec_driver_sql(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE sample_summaries TO {quote(role)}"
            )


def downgrade() -> None:
    op.drop_table("sample_summaries")
