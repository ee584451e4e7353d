"""Uploads' owners, decisions' idempotency keys, and append-only below every SQL statement.

Revision ID: 0005
Revises: 0004
- `sample_predictions.uploader` / `uploader_source`: whom an upload belongs to; only that
  identity may withdraw it. Rows recorded before are `unrecorded` (nobody can).
- `sample_withdrawals.uploader` / `uploader_source` / `through_id`: a withdrawal covers its
  owner's rows of that upload up to `through_id`, never a row recorded after it. Earlier
  withdrawals keep covering what they covered (their owner is `unrecorded`, as only earlier
  rows are), with no `through_id`.
- `review_decisions.idempotency_key` (unique) and `request_fingerprint`: a retried decision is
  answered with its first record.
- SQLite's triggers never fired on `REPLACE` / `INSERT OR REPLACE` (and an UPSERT's conflict
  check comes after the row is queued): an insert over an existing id (or idempotency key) is
  now refused before any conflict resolution. PostgreSQL's `TRUNCATE` fires no row trigger:
  a statement trigger refuses it.

Columns are added with ALTER TABLE ADD COLUMN, never by copying a table (its triggers stay).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sample_predictions", "review_decisions", "sample_withdrawals")
NEW_COLUMNS = {
    "sample_predictions": [
        "uploader TEXT NOT NULL DEFAULT ''",
        "uploader_source TEXT NOT NULL DEFAULT 'unrecorded'",
    ],
    "sample_withdrawals": [
        "uploader TEXT NOT NULL DEFAULT ''",
        "uploader_source TEXT NOT NULL DEFAULT 'unrecorded'",
        "through_id INTEGER",
    ],
    "review_decisions": ["idempotency_key TEXT", "request_fingerprint TEXT"],
}
# Besides the id, the columns an insert could collide on and so REPLACE a row through.
UNIQUE_BESIDES_ID = {"review_decisions": ["idempotency_key"]}


def _run(*statements: str) -> None:
    bind = op.get_bind()
    for statement in statements:
        bind.execute(sa.text(statement))


def upgrade() -> None:
    bind = op.get_bind()
    for table, columns in NEW_COLUMNS.items():
        present = {column["name"] for column in sa.inspect(bind).get_columns(table)}
        for column in columns:
            if column.split()[0] not in present:
                _run(f"ALTER TABLE {table} ADD COLUMN {column}")
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes("review_decisions")}
    if "review_decisions_idempotency" not in indexes:
        op.create_index(
            "review_decisions_idempotency", "review_decisions", ["idempotency_key"], unique=True
        )
    if bind.dialect.name == "sqlite":
        for table in TABLES:
            collides = " OR ".join(
                ["id = NEW.id"]
                + [f"({c} IS NOT NULL AND {c} = NEW.{c})" for c in UNIQUE_BESIDES_ID.get(table, [])]
            )
            _run(
                f"DROP TRIGGER IF EXISTS {table}_append_only_insert",
                f"CREATE TRIGGER {table}_append_only_insert BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {collides}) "
                "BEGIN SELECT RAISE(ABORT, 'append only: a record is never replaced'); END",
            )
        return
    for table in TABLES:
        _run(
            f"DROP TRIGGER IF EXISTS {table}_append_only_truncate ON {table}",
            f"CREATE TRIGGER {table}_append_only_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION leukolens_append_only()",
        )


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        if bind.dialect.name == "sqlite":
            _run(f"DROP TRIGGER IF EXISTS {table}_append_only_insert")
        else:
            _run(f"DROP TRIGGER IF EXISTS {table}_append_only_truncate ON {table}")
    op.drop_index("review_decisions_idempotency", table_name="review_decisions")
    # SQLite 3.35+ drops a column in place (no copy of the table, its triggers kept).
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            _run(f"ALTER TABLE {table} DROP COLUMN {column.split()[0]}")
