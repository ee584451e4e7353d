"""The records' one schema and its database: SQLite by default, PostgreSQL by URL.

Every process that opens the database migrates it to the newest schema first (Alembic, in
app/records/migrations); on PostgreSQL an advisory lock makes replicas starting together take turns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ProgrammingError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# What an audit row says became of its request: answered, or refused (503) after its row was
# kept, so that no row claims an answer that was never given (migration 0007).
ANSWERED = "answered"
NOT_ANSWERED = "not_answered"
# The youngest sample record the database lets anyone delete, in days: the delete triggers of
# migration 0003 hold the same number, so that pruning can never reach today's decisions.
MIN_RETENTION_DAYS = 30
# pg_advisory_xact_lock key: any constant shared by every replica ("LEUKOLEN" in ASCII).
MIGRATION_LOCK_KEY = 0x4C45554B4F4C454E
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"

metadata = sa.MetaData()


def _answer_columns() -> list[sa.Column[Any]]:
    """What every record of an answer holds (fresh objects: a Column joins one table)."""
    return [
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("image_sha256", sa.Text, nullable=False),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("probability_all", sa.Float, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
    ]


def _owner_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("uploader", sa.Text, nullable=False, server_default=""),
        sa.Column("uploader_source", sa.Text, nullable=False, server_default="unrecorded"),
    ]


predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False),
    *_answer_columns(),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("client_request_id", sa.Text, nullable=False, server_default=""),
    sa.Column("item", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outcome", sa.Text, nullable=False, server_default=ANSWERED),
    sa.Index("predictions_time", "time"),
    # The server's request id and the image's place in the request: a retried write of the
    # same rows is ignored instead of doubling them.
    sa.Index("predictions_key", "request_id", "item", unique=True),
    sqlite_autoincrement=True,
)


# A sample: which scored images belong to it, every reviewer's decision on them, and the
# requests the page withdrew (a cancelled upload). Append only (a row older than the retention
# may be deleted, never changed); none holds an image or a file name, only the image's sha256
# and the requests that scored it.
sample_predictions = sa.Table(
    "sample_predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("sample_id", sa.Text, nullable=False),
    *_answer_columns(),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("assessable", sa.Integer, nullable=False),
    sa.Column("client_request_id", sa.Text, nullable=False, server_default=""),
    sa.Column("repeat_of", sa.Text, nullable=True),
    # What a page reopening the sample shows without the image: the threshold the call was
    # made at, whether TTA was on, and the quality warnings' codes (";"-joined).
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("tta", sa.Integer, nullable=True),
    sa.Column("warnings", sa.Text, nullable=False, server_default=""),
    # Whom the upload belongs to (migration 0005; app.core.identities): only that identity can
    # withdraw it. Earlier rows are `unrecorded`, and nobody can.
    *_owner_columns(),
    sa.Index("sample_predictions_sample", "sample_id"),
    sa.Index("sample_predictions_time", "time"),
    sa.Index("sample_predictions_cell", "sample_id", "image_sha256", "id"),
    sqlite_autoincrement=True,
)
review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("sample_id", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("image_sha256", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("reviewer", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    # free_text (typed by the client, unverified), sso_header or reviewer_key (migration 0003;
    # every earlier row is free_text).
    sa.Column("reviewer_source", sa.Text, nullable=False, server_default="free_text"),
    # The client's Idempotency-Key and a digest of what was recorded under it (migration 0005):
    # a retried POST answers the first record again instead of storing a second.
    sa.Column("idempotency_key", sa.Text, nullable=True),
    sa.Column("request_fingerprint", sa.Text, nullable=True),
    # Why a decision changed a signed-off sample (migration 0006); null before any sign-off.
    sa.Column("amendment", sa.Text, nullable=True),
    sa.Index("review_decisions_sample", "sample_id"),
    sa.Index("review_decisions_time", "time"),
    # Covers the lookup of a cell's latest decision (migration 0004), adaptation's too.
    sa.Index("review_decisions_cell", "sample_id", "image_sha256", "id", "decision", "reviewer"),
    sa.Index("review_decisions_idempotency", "idempotency_key", unique=True),
    sqlite_autoincrement=True,
)
sample_withdrawals = sa.Table(
    "sample_withdrawals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("sample_id", sa.Text, nullable=False),
    sa.Column("client_request_id", sa.Text, nullable=False),
    # Who withdrew (the upload's owner) and the last row of the upload it covers (migration
    # 0005): rows recorded after it, or another identity's under the same id, stay.
    *_owner_columns(),
    sa.Column("through_id", sa.Integer, nullable=True),
    sa.Index("sample_withdrawals_sample", "sample_id"),
    sa.Index("sample_withdrawals_time", "time"),
    sqlite_autoincrement=True,
)


# Who signed a sample off, when, and the SHA-256 of what they signed (app/records/sign_off.py):
# the canonical content (`content_sha256`) and each signed row's own digest (`rows_sha256`, JSON),
# so that a later check names any row changed since, even behind the API's back.
sample_sign_offs = sa.Table(
    "sample_sign_offs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("sample_id", sa.Text, nullable=False),
    sa.Column("signer", sa.Text, nullable=False),
    sa.Column("signer_source", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("cells", sa.Integer, nullable=False),
    sa.Column("undecided_cells", sa.Integer, nullable=False),
    # The highest decision id in the table when it was signed: later ones are amendments.
    sa.Column("last_decision_id", sa.Integer, nullable=False),
    sa.Column("content_sha256", sa.Text, nullable=False),
    sa.Column("rows_sha256", sa.Text, nullable=False),
    sa.Index("sample_sign_offs_sample", "sample_id"),
    sa.Index("sample_sign_offs_time", "time"),
    sqlite_autoincrement=True,
)
# The sample list's own table (migration 0008): derived from the rows above, one per sample with
# live cells, rewritten with each write to the sample (app/records/sample_summaries.py); never a
# record of its own, so not append only.
sample_summaries = sa.Table(
    "sample_summaries",
    metadata,
    sa.Column("sample_id", sa.Text, primary_key=True),
    sa.Column("cells", sa.Integer, nullable=False),
    sa.Column("reviewed", sa.Integer, nullable=False),
    sa.Column("last_change", sa.Float, nullable=False),
    sa.Index("sample_summaries_order", "last_change", "sample_id"),
)

# How many scorings of a sample, per UTC day, count as what in the local performance figures
# (migration 0009): derived from the rows above by app/records/scoring_outcomes.py, rewritten with
# every write to its sample in the same transaction, so that the figures are one GROUP BY over a
# few rows per sample; never a record, so not append only.
outcome_counts = sa.Table(
    "outcome_counts",
    metadata,
    sa.Column("sample_id", sa.Text, nullable=False),
    sa.Column("model_id", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("day", sa.Float, nullable=False),  # the UTC day's first second
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("assessable", sa.Integer, nullable=False),
    # "w" (the withdrawn cell), "x" (left out), "r" (a repeat), or "" (its cell's scoring)
    sa.Column("fate", sa.Text, nullable=False),
    # its cell's latest decision against the stored call, one letter, then the reviewer; "u"
    sa.Column("decided", sa.Text, nullable=False),
    sa.Column("scorings", sa.Integer, nullable=False),
    sa.Index("outcome_counts_sample", "sample_id"),
    sa.Index("outcome_counts_model", "model_id", "day"),
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def is_sqlite(url: str) -> bool:
    return sa.make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, busy_timeout_seconds: float = 5.0) -> Engine:
    """An engine that survives a database restart (stale pooled connections are replaced)."""
    if is_sqlite(url):
        engine = sa.create_engine(
            url, connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False}
        )

        @sa.event.listens_for(engine, "connect")
        def use_write_ahead_log(dbapi_connection: object, _record: object) -> None:
            # Readers never wait for the writer, and other processes may share the file; a
            # query's scratch space stays in memory, never in TMPDIR (a read-only or tiny /tmp).
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": max(1, round(busy_timeout_seconds))},
    )


class SchemaBehindError(RuntimeError):
    """The schema needs migrating and the connected role may not (a least-privilege role)."""


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (creates it when empty). A role that may not
    change the schema passes when it is current, and raises SchemaBehindError when not."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except ProgrammingError as error:
        if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        raise SchemaBehindError(
            "the records' schema needs migrating and this database role may not change it: "
            "run `python -m app.records migrate` as the tables' owner first "
            f"({str(error.orig).strip().splitlines()[0]})"
        ) from error


def lock_sample(connection: Connection, sample_id: str) -> None:
    """One writer per sample at a time across replicas (PostgreSQL's advisory lock, held to
    the transaction's end); in one process the records' sample lock does it."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:sample))"),
            {"sample": f"leukolens-sample:{sample_id}"},
        )
