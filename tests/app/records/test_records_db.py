"""The records' schema and migrations, on SQLite and on a real PostgreSQL 15 server."""

import pytest
import sqlalchemy as sa

from app.records import records_db


def head_revision() -> str:
    """The newest migration, whichever it is: these tests check that a start reaches it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(records_db.MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


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
    assert version == head_revision()


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


def test_a_repeated_row_is_skipped_on_both_engines(database_url):
    engine = records_db.create_engine(database_url)
    records_db.migrate(engine)
    row = {
        "time": 1.0,
        **MODEL_CALL,
        "latency_ms": 1.0,
        "client_request_id": "",
        "item": 0,
    }
    for _ in range(2):
        with engine.begin() as connection:
            connection.execute(records_db.insert_once(connection), [row, {**row, "item": 1}])
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(records_db.predictions))
        assert count.scalar() == 2
    engine.dispose()


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
    assert version == head_revision()


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
    """Issue 30: an existing record's reviewer was only what a client typed; 0003 says so."""
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
    assert version == head_revision()


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
    assert version == head_revision()


def test_the_floor_of_the_triggers_is_the_settings_floor():
    from importlib import import_module

    migration = import_module("app.records.migrations.versions.0003_reviewer_identity")
    assert migration.MIN_RETENTION_DAYS == records_db.MIN_RETENTION_DAYS


def test_0005_adds_sign_offs_and_amendments_and_goes_back(database_url):
    """Decisions recorded before 0005 amend nothing; going back to 0003 drops the sign-offs'
    table and the column, and up again restores them."""
    engine = records_db.create_engine(database_url)
    move_to(engine, "0003")
    with engine.begin() as connection:
        connection.execute(records_db.review_decisions.insert().values(time=1.0, **DECISION))
    records_db.migrate(engine)
    with engine.connect() as connection:
        amendments = connection.execute(sa.select(records_db.review_decisions.c.amendment))
        assert amendments.scalars().all() == [None]
    move_to(engine, "0003", down=True)
    inspector = sa.inspect(engine)
    assert not inspector.has_table("sample_sign_offs")
    assert "amendment" not in {c["name"] for c in inspector.get_columns("review_decisions")}
    records_db.migrate(engine)
    assert sa.inspect(engine).has_table("sample_sign_offs")
    engine.dispose()
