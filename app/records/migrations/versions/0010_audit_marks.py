"""An audit row may say, after the fact, that its request was not answered; nothing else changes.

Revision ID: 0010
Revises: 0009
A request refused after its audit rows were kept (it waited too long for its record, its client
left) marks them `outcome = 'not_answered'` (0007) by an INSERT ... ON CONFLICT DO UPDATE. On
PostgreSQL the least-privilege app role held INSERT and SELECT alone on `predictions`, so the
mark failed there and stayed in the journal for good. The app role may now UPDATE that one
column, and a trigger on both engines lets an update through only when it sets the outcome to
`not_answered` and leaves every other column as it was: a row can be marked, never rewritten,
and never marked back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "predictions"
TRIGGER = "predictions_marks_only"
FUNCTION = "leukolens_audit_marks_only"
REFUSED = "the audit is append only: a row may only be marked not_answered"
APPENDERS = """
SELECT DISTINCT grantee FROM information_schema.role_table_grants
WHERE table_name = 'predictions' AND privilege_type = 'INSERT'
  AND grantee != current_user AND grantee != 'PUBLIC'
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        columns = [c["name"] for c in sa.inspect(bind).get_columns(TABLE) if c["name"] != "outcome"]
        unchanged = " AND ".join(f"NEW.{name} IS OLD.{name}" for name in columns)
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER}")
        bind.exec_driver_sql(
            f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON {TABLE} "
            f"WHEN NOT (NEW.outcome = 'not_answered' AND {unchanged}) "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        )
        return
    bind.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "IF NEW.outcome IS DISTINCT FROM 'not_answered' "
        "OR (to_jsonb(NEW) - 'outcome') IS DISTINCT FROM (to_jsonb(OLD) - 'outcome') THEN "
        f"RAISE EXCEPTION '{REFUSED}'; "
        "END IF; RETURN NEW; END $$"
    )
    bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE}")
    bind.exec_driver_sql(
        f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
    )
    quote = bind.dialect.identifier_preparer.quote
    for (role,) in bind.exec_driver_sql(APPENDERS).all():
        bind.exec_driver_sql(f"GRANT UPDATE (outcome) ON TABLE {TABLE} TO {quote(role)}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER}")
        return
    bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE}")
    bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    quote = bind.dialect.identifier_preparer.quote
    for (role,) in bind.exec_driver_sql(APPENDERS).all():
        bind.exec_driver_sql(f"REVOKE UPDATE (outcome) ON TABLE {TABLE} FROM {quote(role)}")
