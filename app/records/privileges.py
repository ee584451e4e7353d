"""Least privilege on PostgreSQL: the app's role reads and appends, the owner's role migrates
and prunes.

The triggers refuse every UPDATE, TRUNCATE and young DELETE, but a table's owner may drop a
trigger. So in production the server connects as a role that owns nothing and holds SELECT
and INSERT alone (no UPDATE, DELETE or TRUNCATE); the owner's role runs the migrations and the
retention's pruning, in its own process (`python -m app.records migrate|prune`;
deploy/postgresql/ and docs/security.md). A server whose role may not delete leaves the
pruning to that process and says so once; one whose role may not migrate refuses to start
while the schema is behind.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.records import records_db

RECORD_TABLES = (
    records_db.sample_predictions.name,
    records_db.review_decisions.name,
    records_db.sample_withdrawals.name,
    records_db.sample_sign_offs.name,
)
APPEND_ONLY_TABLES = (*RECORD_TABLES, records_db.predictions.name)
# Derived from the records, rewritten with each write to a sample (app/records/
# sample_summaries.py, scoring_outcomes.py): no record, so the app's role keeps them; tampering
# with them could only miscount the list or the local figures, never change a record, and
# their `rebuild` restores them.
DERIVED_TABLES = (records_db.sample_summaries.name, records_db.outcome_counts.name)
VERSION_TABLE = "alembic_version"


def may_delete(engine: Engine, table: str) -> bool:
    """Whether the connected role may delete from `table` (always on SQLite: a file is all or
    nothing)."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as connection:
        return bool(
            connection.execute(
                sa.text("SELECT has_table_privilege(current_user, :table, 'DELETE')"),
                {"table": table},
            ).scalar()
        )


def app_role_grants(engine: Engine, role: str) -> list[str]:
    """The statements that leave `role` exactly SELECT and INSERT on the record and audit
    tables (and their id sequences), the audit's `outcome` to mark, SELECT on the schema's
    version, and the derived summaries' rows to rewrite."""
    quote = engine.dialect.identifier_preparer.quote
    grantee = quote(role)
    statements = [f"GRANT USAGE ON SCHEMA public TO {grantee}"]
    with engine.connect() as connection:
        for table in APPEND_ONLY_TABLES:
            sequence = connection.execute(
                sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}
            ).scalar()
            statements += [
                f"REVOKE ALL ON TABLE {quote(table)} FROM {grantee}",
                f"GRANT SELECT, INSERT ON TABLE {quote(table)} TO {grantee}",
            ]
            if sequence is not None:
                statements.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {grantee}")
    # An audit row may be marked not answered after the fact (migration 0010's trigger lets
    # that one change through, nothing else).
    statements.append(
        f"GRANT UPDATE (outcome) ON TABLE {quote(records_db.predictions.name)} TO {grantee}"
    )
    for table in DERIVED_TABLES:
        statements += [
            f"REVOKE ALL ON TABLE {quote(table)} FROM {grantee}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {quote(table)} TO {grantee}",
        ]
    statements += [
        f"REVOKE ALL ON TABLE {VERSION_TABLE} FROM {grantee}",
        f"GRANT SELECT ON TABLE {VERSION_TABLE} TO {grantee}",
    ]
    return statements


def grant_app_role(engine: Engine, role: str) -> None:
    """Run as the tables' owner, after migrating (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        raise ValueError("roles and grants exist on PostgreSQL only")
    statements = app_role_grants(engine, role)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
