"""The records' schema and migrations, on SQLite and on a real PostgreSQL 15 server."""

import pytest
import sqlalchemy as sa

from app.service import records_db


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
    assert version == "0002"


def test_the_migrated_schema_matches_the_declared_one(database_url):
    """Alembic's comparison of the migrated database with app.service.records_db.metadata is empty,
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
        "request_id": "r",
        "image_sha256": "ab",
        "model_id": "m",
        "model_version": "1",
        "probability_all": 0.5,
        "label": "ALL",
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
    assert version == "0002"
