"""Sign-offs, bound to what was signed, and amendments after them.

Revision ID: 0006
Revises: 0005
`sample_sign_offs` records who signed a sample off, when, with the SHA-256 of its canonical
content and of each row signed (app/records/sign_off.py). Like every sample record it is append
only: an update is refused, and a row goes only once older than MIN_RETENTION_DAYS (the
functions of 0002 and 0003 on PostgreSQL, the same rule in SQLite triggers); as in 0005, an
insert over an existing id (SQLite's REPLACE) and PostgreSQL's TRUNCATE are refused too.
`review_decisions.amendment` holds why a decision changed a signed-off sample (null otherwise);
added in place, so the table's triggers stay.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "sample_sign_offs"
# Frozen here as this migration's own number, as in 0003.
MIN_RETENTION_SECONDS = 30 * 86_400
REFUSED = "append only: a record younger than 30 days cannot be deleted"


def _run(*statements: str) -> None:
    bind = op.get_bind()
    for statement in statements:
        bind.execute(sa.text(statement))


def upgrade() -> None:
    bind = op.get_bind()
    present = {column["name"] for column in sa.inspect(bind).get_columns("review_decisions")}
    if "amendment" not in present:
        _run("ALTER TABLE review_decisions ADD COLUMN amendment TEXT")
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("sample_id", sa.Text, nullable=False),
        sa.Column("signer", sa.Text, nullable=False),
        sa.Column("signer_source", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("cells", sa.Integer, nullable=False),
        sa.Column("undecided_cells", sa.Integer, nullable=False),
        sa.Column("last_decision_id", sa.Integer, nullable=False),
        sa.Column("content_sha256", sa.Text, nullable=False),
        sa.Column("rows_sha256", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(f"{TABLE}_sample", TABLE, ["sample_id"])
    op.create_index(f"{TABLE}_time", TABLE, ["time"])
    if bind.dialect.name == "sqlite":
        now = "((julianday('now') - 2440587.5) * 86400.0)"
        _run(
            f"CREATE TRIGGER {TABLE}_append_only_update BEFORE UPDATE ON {TABLE} "
            "BEGIN SELECT RAISE(ABORT, 'append only'); END",
            f"CREATE TRIGGER {TABLE}_append_only_delete BEFORE DELETE ON {TABLE} "
            f"WHEN OLD.time >= {now} - {MIN_RETENTION_SECONDS} "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END",
            f"CREATE TRIGGER {TABLE}_append_only_insert BEFORE INSERT ON {TABLE} "
            f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE id = NEW.id) "
            "BEGIN SELECT RAISE(ABORT, 'append only: a record is never replaced'); END",
        )
        return
    _run(
        f"CREATE TRIGGER {TABLE}_append_only_update BEFORE UPDATE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION leukolens_append_only()",
        f"CREATE TRIGGER {TABLE}_append_only_delete BEFORE DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION leukolens_delete_expired_only()",
        f"CREATE TRIGGER {TABLE}_append_only_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION leukolens_append_only()",
    )


def downgrade() -> None:
    op.drop_table(TABLE)  # its triggers and indexes go with it
    # SQLite 3.35+ drops a column in place (no copy of the table, its triggers kept).
    _run("ALTER TABLE review_decisions DROP COLUMN amendment")
