import sqlalchemy as sa

from app.records.records_errors import RecordsUnavailableError, unavailable


def test_the_refusal_gives_the_databases_first_line_and_says_nothing_was_kept():
    error = sa.exc.OperationalError("INSERT ...", {}, Exception("database is locked\nmore"))
    refusal = unavailable(error)
    assert isinstance(refusal, RecordsUnavailableError)
    assert str(refusal) == (
        "the sample's records could not be written (database is locked); nothing was "
        "recorded: retry"
    )
