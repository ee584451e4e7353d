"""Samples, reviewers' decisions and withdrawals in the records' one database.

Revision ID: 0002
Revises: 0001
Until now the review workstation wrote `sample_predictions` and `review_decisions` with raw
sqlite3 into the audit's SQLite file, beside this schema: such files are adopted as they are,
every row kept, and gain the columns they lack. On PostgreSQL the tables are created here, so
that every replica reads and writes the same samples.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sample_prediction_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("sample_id", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("image_sha256", sa.Text, nullable=False),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("probability_all", sa.Float, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("assessable", sa.Integer, nullable=False),
        *_later_sample_prediction_columns(),
    ]


def _later_sample_prediction_columns() -> list[sa.Column[object]]:
    """Columns the raw-sqlite3 tables lacked (fresh objects: a Column joins one table)."""
    return [
        sa.Column("client_request_id", sa.Text, nullable=False, server_default=""),
        sa.Column("repeat_of", sa.Text, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("tta", sa.Integer, nullable=True),
        sa.Column("warnings", sa.Text, nullable=False, server_default=""),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("sample_predictions"):
        op.create_table(
            "sample_predictions", *_sample_prediction_columns(), sqlite_autoincrement=True
        )
    else:
        present = {column["name"] for column in inspector.get_columns("sample_predictions")}
        for column in _later_sample_prediction_columns():
            if column.name not in present:
                # ALTER TABLE ADD COLUMN, without batch mode: SQLite must not copy the table
                # (its append-only triggers on the sibling table stay as they are).
                sql_type = column.type.compile(dialect=op.get_bind().dialect)
                op.get_bind().execute(
                    sa.text(
                        f"ALTER TABLE sample_predictions ADD COLUMN {column.name} {sql_type}"
                        + (" NOT NULL DEFAULT ''" if not column.nullable else "")
                    )
                )
    if not inspector.has_table("review_decisions"):
        op.create_table(
            "review_decisions",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.Float, nullable=False),
            sa.Column("sample_id", sa.Text, nullable=False),
            sa.Column("request_id", sa.Text, nullable=False),
            sa.Column("image_sha256", sa.Text, nullable=False),
            sa.Column("decision", sa.Text, nullable=False),
            sa.Column("reviewer", sa.Text, nullable=False),
            sa.Column("comment", sa.Text, nullable=False),
            sqlite_autoincrement=True,
        )
    if not inspector.has_table("sample_withdrawals"):
        op.create_table(
            "sample_withdrawals",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.Float, nullable=False),
            sa.Column("sample_id", sa.Text, nullable=False),
            sa.Column("client_request_id", sa.Text, nullable=False),
            sqlite_autoincrement=True,
        )
    _append_only(("sample_predictions", "review_decisions", "sample_withdrawals"))
    for table, name in (
        ("sample_predictions", "sample_predictions_sample"),
        ("review_decisions", "review_decisions_sample"),
        ("sample_withdrawals", "sample_withdrawals_sample"),
    ):
        if name not in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}:
            op.create_index(name, table, ["sample_id"])


def _append_only(tables: Sequence[str]) -> None:
    """Rows are never changed or removed: a correction or a withdrawal is a row of its own."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in tables:
            for action in ("UPDATE", "DELETE"):
                bind.execute(
                    sa.text(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_append_only_{action.lower()} "
                        f"BEFORE {action} ON {table} BEGIN SELECT RAISE(ABORT, 'append only'); END"
                    )
                )
        return
    bind.execute(
        sa.text(
            "CREATE OR REPLACE FUNCTION leukolens_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'append only'; END $$ LANGUAGE plpgsql"
        )
    )
    for table in tables:
        bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        bind.execute(
            sa.text(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION leukolens_append_only()"
            )
        )


def downgrade() -> None:
    op.drop_table("sample_withdrawals")
    op.drop_table("review_decisions")
    op.drop_table("sample_predictions")
