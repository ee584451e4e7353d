"""Who decided, and how long sample records are kept.

Revision ID: 0003
Revises: 0002
`review_decisions.reviewer_source` says where a decision's reviewer name came from: typed by
the client (`free_text`, which every earlier row was), the sign-on proxy (`sso_header`) or the
reviewer's own key (`reviewer_key`). Sample records now follow a retention: the delete triggers
of 0002 give way to ones that let a row go only once it is older than MIN_RETENTION_DAYS, so
that no pruning (or anything else) can remove what was decided in the last month; updates stay
forbidden. Each table gains an index on `time` for the pruning.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sample_predictions", "review_decisions", "sample_withdrawals")
# Frozen here as the migration's own number (app.records.records_db.MIN_RETENTION_DAYS says
# the same; a later change would be a migration of its own).
MIN_RETENTION_DAYS = 30
MIN_RETENTION_SECONDS = MIN_RETENTION_DAYS * 86_400
REFUSED = f"append only: a record younger than {MIN_RETENTION_DAYS} days cannot be deleted"


def upgrade() -> None:
    bind = op.get_bind()
    present = {column["name"] for column in sa.inspect(bind).get_columns("review_decisions")}
    if "reviewer_source" not in present:
        # ALTER TABLE ADD COLUMN, never a copy of the table (its triggers stay): existing rows
        # take the default, free text.
        _run(
            "ALTER TABLE review_decisions "
            "ADD COLUMN reviewer_source TEXT NOT NULL DEFAULT 'free_text'"
        )
    for table in TABLES:
        indexes = {index["name"] for index in sa.inspect(bind).get_indexes(table)}
        if f"{table}_time" not in indexes:
            op.create_index(f"{table}_time", table, ["time"])
    _delete_only_when_expired(TABLES)


def _run(*statements: str) -> None:
    bind = op.get_bind()
    for statement in statements:
        bind.execute(sa.text(statement))


def _delete_only_when_expired(tables: Sequence[str]) -> None:
    """Deleting a row is refused unless it is older than MIN_RETENTION_DAYS; updating one
    stays refused (0002's update triggers)."""
    if op.get_bind().dialect.name == "sqlite":
        now = "((julianday('now') - 2440587.5) * 86400.0)"
        for table in tables:
            _run(
                f"DROP TRIGGER IF EXISTS {table}_append_only_delete",
                f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
                f"WHEN OLD.time >= {now} - {MIN_RETENTION_SECONDS} "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END",
            )
        return
    _run(
        "CREATE OR REPLACE FUNCTION leukolens_delete_expired_only() RETURNS trigger AS $$ "
        f"BEGIN IF OLD.time < extract(epoch FROM clock_timestamp()) - {MIN_RETENTION_SECONDS} "
        f"THEN RETURN OLD; END IF; RAISE EXCEPTION '{REFUSED}'; END $$ LANGUAGE plpgsql"
    )
    for table in tables:
        _run(
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_append_only_update ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_append_only_delete ON {table}",
            f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION leukolens_append_only()",
            f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION leukolens_delete_expired_only()",
        )


def downgrade() -> None:
    """Back to 0002: every delete refused again, the column and the indexes gone."""
    bind = op.get_bind()
    for table in TABLES:
        op.drop_index(f"{table}_time", table_name=table)
    if bind.dialect.name == "sqlite":
        for table in TABLES:
            _run(
                f"DROP TRIGGER IF EXISTS {table}_append_only_delete",
                f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'append only'); END",
            )
    else:
        for table in TABLES:
            _run(
                f"DROP TRIGGER IF EXISTS {table}_append_only_update ON {table}",
                f"DROP TRIGGER IF EXISTS {table}_append_only_delete ON {table}",
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION leukolens_append_only()",
            )
        _run("DROP FUNCTION IF EXISTS leukolens_delete_expired_only()")
    # SQLite 3.35+ drops a column in place (no copy of the table, its triggers kept).
    _run("ALTER TABLE review_decisions DROP COLUMN reviewer_source")
