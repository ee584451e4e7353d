"""The records' refusals: a database that cannot take or give a row now, and one that cannot
be opened at all."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError


class RecordsUnavailableError(RuntimeError):
    """The records' database cannot take or give a row now (locked past the busy timeout,
    unreachable, full): the request is refused with the reason, never answered as recorded."""


class RecordsDatabaseError(RuntimeError):
    """The records' database cannot be opened or migrated: the server does not start."""


def unavailable(error: SQLAlchemyError) -> RecordsUnavailableError:
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
    return RecordsUnavailableError(
        f"the sample's records could not be written ({reason}); nothing was recorded: retry"
    )
