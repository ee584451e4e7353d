import pytest

from app.records.review_records import ReviewRecords


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request, tmp_path):
    """The records on each engine: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        store = ReviewRecords(tmp_path / "audit.sqlite3")
    else:
        store = ReviewRecords(request.getfixturevalue("postgres_url"))
    yield store
    store.close()
