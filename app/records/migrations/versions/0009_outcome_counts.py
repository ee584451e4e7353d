"""How many scorings of each sample count as what in the local performance figures, per day.

Revision ID: 0009
Revises: 0008
GET /api/v1/performance worked out, for every scoring at every request, whether it is its
cell's, a repeat or withdrawn, and its cell's latest decision: 0.5 s on 200,000 cells.
`outcome_counts` keeps how many scorings of each sample count as what, per UTC day
(app/records/scoring_outcomes.py), rewritten with every write to the sample, and is filled here
from the rows there are by the same rules, so that the figures are one GROUP BY over a few rows
per sample.

The table is derived, not a record: as with 0008's `sample_summaries`, every role that may append
sample rows (the app's least-privilege role) may rewrite it too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "outcome_counts"


def _withdrawn(alias: str) -> str:
    return (
        f"({alias}.client_request_id != '' AND EXISTS (SELECT 1 FROM sample_withdrawals w "
        f"WHERE w.sample_id = {alias}.sample_id "
        f"AND w.client_request_id = {alias}.client_request_id))"
    )


def _same_cell(alias: str) -> str:
    return f"{alias}.sample_id = p.sample_id AND {alias}.image_sha256 = p.image_sha256"


# What each scoring already there counts as, as app/records/scoring_outcomes.py works it out.
SCORINGS = f"""
SELECT p.sample_id, p.model_id, p.model_version, {{day}} AS day, p.state, p.assessable,
       CASE
         WHEN {_withdrawn("p")} THEN
           CASE WHEN NOT EXISTS (SELECT 1 FROM sample_predictions e
                                 WHERE {_same_cell("e")} AND NOT {_withdrawn("e")})
                 AND NOT EXISTS (SELECT 1 FROM sample_predictions e
                                 WHERE {_same_cell("e")} AND e.id < p.id AND {_withdrawn("e")})
                THEN 'w' ELSE 'x' END
         WHEN p.repeat_of IS NOT NULL AND EXISTS (
                SELECT 1 FROM sample_predictions e
                WHERE {_same_cell("e")} AND e.id < p.id AND NOT {_withdrawn("e")})
           THEN 'r'
         ELSE ''
       END AS fate,
       COALESCE((
         SELECT CASE WHEN d.decision = 'not_assessable' THEN 'd'
                     WHEN d.decision = 'ALL' THEN
                       CASE WHEN p.label = 'ALL' THEN 'P' ELSE 'N' END
                     ELSE CASE WHEN p.label = 'ALL' THEN 'F' ELSE 'T' END
                END || d.reviewer
         FROM review_decisions d WHERE {_same_cell("d")}
         ORDER BY d.id DESC LIMIT 1), 'u') AS decided
FROM sample_predictions p
"""
KEYS = "sample_id, model_id, model_version, day, state, assessable, fate, decided"
FILL = (
    f"INSERT INTO {TABLE} ({KEYS}, scorings) "
    f"SELECT {KEYS}, count(*) FROM ({{scorings}}) s GROUP BY {KEYS}"
)
# The first second of a time's UTC day (times are after 1970: truncation is the floor).
DAYS = {
    "postgresql": "floor(p.time / 86400) * 86400",
    "sqlite": "CAST(p.time / 86400 AS INTEGER) * 86400",
}
WRITERS = """
SELECT DISTINCT grantee FROM information_schema.role_table_grants
WHERE table_name = 'sample_predictions' AND privilege_type = 'INSERT'
  AND grantee != current_user AND grantee != 'PUBLIC'
"""


def upgrade() -> None:
    bind = op.get_bind()
    # SQLite's DDL is not transactional: a run cut short may have left the table or its indexes.
    if not sa.inspect(bind).has_table(TABLE):
        op.create_table(
            TABLE,
            sa.Column("sample_id", sa.Text, nullable=False),
            sa.Column("model_id", sa.Text, nullable=False),
            sa.Column("model_version", sa.Text, nullable=False),
            sa.Column("day", sa.Float, nullable=False),
            sa.Column("state", sa.Text, nullable=False),
            sa.Column("assessable", sa.Integer, nullable=False),
            sa.Column("fate", sa.Text, nullable=False),
            sa.Column("decided", sa.Text, nullable=False),
            sa.Column("scorings", sa.Integer, nullable=False),
        )
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes(TABLE)}
    for name, columns in {
        f"{TABLE}_sample": ["sample_id"],
        f"{TABLE}_model": ["model_id", "day"],
    }.items():
        if name not in indexes:
            op.create_index(name, TABLE, columns)
    bind.exec_driver_sql(f"DELETE FROM {TABLE}")
    scorings = SCORINGS.format(day=DAYS[bind.dialect.name])
    bind.exec_driver_sql(FILL.format(scorings=scorings))
    if bind.dialect.name == "postgresql":
        quote = bind.dialect.identifier_preparer.quote
        for (role,) in bind.exec_driver_sql(WRITERS).all():
            bind.exec_driver_sql(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {TABLE} TO {quote(role)}"
            )


def downgrade() -> None:
    op.drop_table(TABLE)
