"""The records' schema and migrations, on SQLite and on a real PostgreSQL 15 server."""

import pytest
import sqlalchemy as sa

from app.records import records_db

HEAD = "0010"  # the newest migration

# One image's answer from one model, as the predictions and sample_predictions rows hold it.
MODEL_CALL = {
    "request_id": "r",
    "image_sha256": "ab",
    "model_id": "m",
    "model_version": "1",
    "probability_all": 0.5,
    "label": "ALL",
}


def schema_of(engine: sa.Engine) -> tuple[dict, set, str]:
    inspector = sa.inspect(engine)
    columns = {
        column["name"]: column["nullable"] for column in inspector.get_columns("predictions")
    }
    indexes = {
        (index["name"], tuple(index["column_names"]), bool(index["unique"]))
        for index in inspector.get_indexes("predictions")
    }
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return columns, indexes, version


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return records_db.sqlite_url(tmp_path / "records.sqlite3")
    return request.getfixturevalue("postgresql_url")


@pytest.fixture
def postgresql_url(postgres_url):
    return postgres_url


def test_migrations_build_the_same_schema_on_both_engines(database_url):
    engine = records_db.create_engine(database_url)
    records_db.migrate(engine)
    records_db.migrate(engine)  # a second start finds it current and changes nothing
    columns, indexes, version = schema_of(engine)
    engine.dispose()
    assert columns == {column.name: column.nullable for column in records_db.predictions.columns}
    assert ("predictions_key", ("request_id", "item"), True) in indexes
    assert ("predictions_time", ("time",), False) in indexes
    assert version == HEAD


def test_the_migrated_schema_matches_the_declared_one(database_url):
    """Alembic's comparison of the migrated database with app.records.records_db.metadata is empty,
    so the migrations and the module's table cannot drift apart."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = records_db.create_engine(database_url)
    records_db.migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), records_db.metadata)
    engine.dispose()
    assert differences == []


def test_replicas_migrating_at_once_take_turns(postgres_url):
    """Two processes starting together on an empty PostgreSQL: the advisory lock lets one
    create the schema while the other waits, and neither fails."""
    from concurrent.futures import ThreadPoolExecutor

    engines = [records_db.create_engine(postgres_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(records_db.migrate, engines))
    _, _, version = schema_of(engines[0])
    for engine in engines:
        engine.dispose()
    assert version == HEAD


def move_to(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    """Alembic to `revision` on the engine, as records_db.migrate does for the head."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(records_db.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


DECISION = {
    "sample_id": "S-1",
    "request_id": "r",
    "image_sha256": "ab",
    "decision": "ALL",
    "reviewer": "Dr A",
    "comment": "",
}


def test_decisions_recorded_before_0003_are_marked_free_text(database_url):
    """An existing record's reviewer was only what a client typed; 0003 says so."""
    engine = records_db.create_engine(database_url)
    move_to(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO review_decisions (time, sample_id, request_id, image_sha256, "
                "decision, reviewer, comment) VALUES (1.0, :sample_id, :request_id, "
                ":image_sha256, :decision, :reviewer, :comment)"
            ),
            DECISION,
        )
    records_db.migrate(engine)
    with engine.connect() as connection:
        sources = connection.execute(sa.select(records_db.review_decisions.c.reviewer_source))
        assert sources.scalars().all() == ["free_text"]
    _, _, version = schema_of(engine)
    engine.dispose()
    assert version == HEAD


def test_only_rows_older_than_the_floor_may_be_deleted_and_none_updated(database_url):
    """The records stay append-only: an update is refused, and so is deleting a row younger
    than MIN_RETENTION_DAYS; an older one may go (the retention's pruning)."""
    import time

    engine = records_db.create_engine(database_url)
    records_db.migrate(engine)
    now = time.time()
    floor = records_db.MIN_RETENTION_DAYS * 86_400
    old, recent = now - floor - 86_400, now - floor + 86_400
    tables = {
        records_db.sample_predictions: {
            "sample_id": "S-1",
            **MODEL_CALL,
            "state": "suggests_all",
            "assessable": 1,
        },
        records_db.review_decisions: DECISION,
        records_db.sample_withdrawals: {"sample_id": "S-1", "client_request_id": "u"},
    }
    for table, row in tables.items():
        with engine.begin() as connection:
            connection.execute(table.insert(), [{**row, "time": old}, {**row, "time": recent}])
        with pytest.raises(sa.exc.DBAPIError, match="append only"), engine.begin() as connection:
            connection.execute(table.update().values(sample_id="S-2"))
        with pytest.raises(sa.exc.DBAPIError, match="append only"), engine.begin() as connection:
            connection.execute(table.delete())
        with engine.begin() as connection:
            assert (
                connection.execute(table.delete().where(table.c.time < now - floor)).rowcount == 1
            )
        with engine.connect() as connection:
            assert connection.execute(sa.select(table.c.time)).scalars().all() == [recent]
    engine.dispose()


def test_0003_downgrades_to_the_strict_triggers(database_url):
    engine = records_db.create_engine(database_url)
    records_db.migrate(engine)
    move_to(engine, "0002", down=True)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("review_decisions")}
    assert "reviewer_source" not in columns
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO sample_withdrawals (time, sample_id, client_request_id) "
                "VALUES (1.0, 'S-1', 'u')"
            )
        )
    with pytest.raises(sa.exc.DBAPIError, match="append only"), engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM sample_withdrawals"))
    records_db.migrate(engine)  # and up again
    _, _, version = schema_of(engine)
    engine.dispose()
    assert version == HEAD


def test_the_floor_of_the_triggers_is_the_settings_floor():
    from importlib import import_module

    migration = import_module("app.records.migrations.versions.0003_reviewer_identity")
    assert migration.MIN_RETENTION_DAYS == records_db.MIN_RETENTION_DAYS


def test_0006_adds_sign_offs_and_amendments_and_goes_back(database_url):
    """Decisions recorded before 0006 amend nothing; going back to 0005 drops the sign-offs'
    table and the column, and up again restores them."""
    engine = records_db.create_engine(database_url)
    move_to(engine, "0005")
    with engine.begin() as connection:
        connection.execute(records_db.review_decisions.insert().values(time=1.0, **DECISION))
    records_db.migrate(engine)
    with engine.connect() as connection:
        amendments = connection.execute(sa.select(records_db.review_decisions.c.amendment))
        assert amendments.scalars().all() == [None]
    move_to(engine, "0005", down=True)
    inspector = sa.inspect(engine)
    assert not inspector.has_table("sample_sign_offs")
    assert "amendment" not in {c["name"] for c in inspector.get_columns("review_decisions")}
    records_db.migrate(engine)
    assert sa.inspect(engine).has_table("sample_sign_offs")
    engine.dispose()


def recorded_decision(path) -> int:
    """A SQLite records file holding one scored cell and one ALL decision; the decision's id."""
    from app.records.review_records import ReviewRecords
    from tests.app.records.test_review_records import SHA_A, prediction, review

    records = ReviewRecords(path)
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    record = records.add_decision_once(review(SHA_A, "ALL"), idempotency_key="k-1")[0]
    records.close()
    return record.id


REWRITES = [
    "REPLACE INTO review_decisions (id, time, sample_id, request_id, image_sha256, decision, "
    "reviewer, comment) VALUES (:id, 1.0, 'S-1', 'r1', :sha, 'HEM', 'Mallory', '')",
    "INSERT OR REPLACE INTO review_decisions (id, time, sample_id, request_id, image_sha256, "
    "decision, reviewer, comment) VALUES (:id, 1.0, 'S-1', 'r1', :sha, 'HEM', 'Mallory', '')",
    "INSERT INTO review_decisions (id, time, sample_id, request_id, image_sha256, decision, "
    "reviewer, comment) VALUES (:id, 1.0, 'S-1', 'r1', :sha, 'HEM', 'Mallory', '') "
    "ON CONFLICT(id) DO UPDATE SET decision = 'HEM'",
    # a REPLACE that collides on the idempotency key instead of the id
    "INSERT OR REPLACE INTO review_decisions (time, sample_id, request_id, image_sha256, "
    "decision, reviewer, comment, idempotency_key) "
    "VALUES (1.0, 'S-1', 'r1', :sha, 'HEM', 'Mallory', '', 'k-1')",
]


@pytest.mark.parametrize("statement", REWRITES, ids=["replace", "or-replace", "upsert", "by-key"])
def test_sqlite_refuses_replacing_a_decision_through_the_driver(tmp_path, statement):
    """`REPLACE INTO review_decisions` over a decision's id once rewrote an ALL
    decision to HEM: SQLite's REPLACE deletes without firing delete triggers."""
    import sqlite3

    from tests.app.records.test_review_records import SHA_A

    path = tmp_path / "audit.sqlite3"
    decision_id = recorded_decision(path)
    connection = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append only"):
        connection.execute(statement.replace(":id", str(decision_id)).replace(":sha", f"'{SHA_A}'"))
    connection.rollback()
    rows = connection.execute("SELECT id, decision, reviewer FROM review_decisions").fetchall()
    connection.close()
    assert rows == [(decision_id, "ALL", "Dr A")]


@pytest.mark.parametrize("table", ["sample_predictions", "sample_withdrawals", "sample_sign_offs"])
def test_sqlite_refuses_replacing_any_record_row(tmp_path, table):
    import sqlite3

    from app.records.review_records import ReviewRecords

    path = tmp_path / "audit.sqlite3"
    recorded_decision(path)
    records = ReviewRecords(path)
    records.sign_offs.sign_off("S-1", signer="Dr B", signer_source="free_text")
    records.close()
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO sample_withdrawals (time, sample_id, client_request_id) VALUES (1, 'S', 'u')"
    )
    connection.commit()
    (row_id,) = connection.execute(f"SELECT max(id) FROM {table}").fetchone()
    columns = [c[1] for c in connection.execute(f"PRAGMA table_info({table})")]
    row = connection.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
    marks = ", ".join("?" * len(columns))
    with pytest.raises(sqlite3.IntegrityError, match="append only"):
        connection.execute(f"REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})", row)
    connection.close()


def test_postgresql_refuses_truncate_even_to_the_tables_owner(postgres_url):
    """The app's database user could once TRUNCATE review_decisions (306 -> 0):
    TRUNCATE fires no row trigger. A statement trigger refuses it now, whoever asks (the
    app's own role may not even try: app/records/privileges.py)."""
    import psycopg

    from app.records.review_records import ReviewRecords
    from tests.app.records.test_review_records import SHA_A, prediction, review

    records = ReviewRecords(postgres_url)
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    records.close()
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as connection:
        tables = (
            "review_decisions",
            "sample_predictions",
            "sample_withdrawals",
            "sample_sign_offs",
        )
        for table in tables:
            with pytest.raises(psycopg.errors.RaiseException, match="append only"):
                connection.execute(f"TRUNCATE {table} CASCADE")
            connection.rollback()
        assert connection.execute("SELECT count(*) FROM review_decisions").fetchone() == (1,)


def test_0005_adopts_an_earlier_database_its_rows_and_withdrawals(database_url):
    """Rows of the earlier schema are kept: their owner is `unrecorded`, and an earlier
    withdrawal still covers the rows it covered."""
    from app.records.review_records import ReviewRecords

    engine = records_db.create_engine(database_url)
    move_to(engine, "0003")
    cell = {
        "time": 1.0e9,
        "sample_id": "S-1",
        **MODEL_CALL,
        "state": "suggests_all",
        "assessable": 1,
        "client_request_id": "u-1",
    }
    with engine.begin() as connection:
        for request_id, sha in (("r1", "a" * 64), ("r2", "b" * 64)):
            connection.execute(
                sa.text(
                    "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, "
                    "model_id, model_version, probability_all, label, state, assessable, "
                    "client_request_id) VALUES (:time, :sample_id, :request_id, :sha, "
                    ":model_id, :model_version, :probability_all, :label, :state, "
                    ":assessable, :client_request_id)"
                ),
                {
                    **cell,
                    "request_id": request_id,
                    "sha": sha,
                    "client_request_id": "u-kept" if request_id == "r1" else "u-gone",
                },
            )
        connection.execute(
            sa.text(
                "INSERT INTO sample_withdrawals (time, sample_id, client_request_id) "
                "VALUES (1.0e9, 'S-1', 'u-gone')"
            )
        )
    engine.dispose()
    records = ReviewRecords(database_url)  # migrates to the head
    (only,) = records.sample("S-1").predictions
    assert (only.request_id, only.uploader_source) == ("r1", "unrecorded")
    records.close()
    engine = records_db.create_engine(database_url)
    _, _, version = schema_of(engine)
    assert version == HEAD
    move_to(engine, "0003", down=True)
    _, _, version = schema_of(engine)
    engine.dispose()
    assert version == "0003"


def test_an_audit_row_may_be_marked_not_answered_and_nothing_else(database_url):
    """Migration 0010: a request refused after its row was kept marks it; no other change to
    an audit row goes through, a mark back to `answered` included."""
    from app.records.review_records import ReviewRecords
    from tests.app.records.test_prediction_records import record

    records = ReviewRecords(database_url)
    log = records.predictions
    kept = log.submit([record(1_800_000_000.0, "r1")])
    kept.written.result(10)
    log.unanswered(kept)  # its client left after all
    log.flush(10)
    assert [(r.request_id, r.outcome) for r in log.rows()] == [("r1", "not_answered")]
    for change in (
        "UPDATE predictions SET probability_all = 0.01",
        "UPDATE predictions SET outcome = 'answered'",
        "UPDATE predictions SET outcome = 'not_answered', label = 'HEM'",
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append only"), records.engine.begin() as c:
            c.execute(sa.text(change))
    assert [(r.request_id, r.outcome, r.label) for r in log.rows()] == [
        ("r1", "not_answered", "ALL")
    ]
    records.close()
