"""The records' refusals: a database that cannot take or give a row now, and one that cannot
be opened at all. Every write to the records (a prediction's record, a decision, a withdrawal,
a sign-off) says "could not be recorded" with the one type below, answered 503 with the reason.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError


class RecordsUnavailableError(RuntimeError):
    """The records cannot take or give a row now (locked past the busy timeout, unreachable,
    full, or neither the journal nor the database took a prediction's record in time): the
    request is refused with the reason, never answered as recorded."""


class RecordsDatabaseError(RuntimeError):
    """The records' database (or the journal beside it) cannot be opened or migrated: the
    server does not start; the message names the file or server and the setting to change."""


def reason_of(error: BaseException) -> str:
    """The first line of what the driver said (a URL's password never appears in it)."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def unavailable(error: SQLAlchemyError) -> RecordsUnavailableError:
    return RecordsUnavailableError(
        f"the sample's records could not be written ({reason_of(error)}); nothing was "
        "recorded: retry"
    )
