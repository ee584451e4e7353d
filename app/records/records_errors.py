"""The records' refusal when their database cannot take or give a row now."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError


class RecordsUnavailableError(RuntimeError):
    """The records' database cannot take or give a row now (locked past the busy timeout,
    unreachable, full): the request is refused with the reason, never answered as recorded."""


def unavailable(error: SQLAlchemyError) -> RecordsUnavailableError:
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
    return RecordsUnavailableError(
        f"the sample's records could not be written ({reason}); nothing was recorded: retry"
    )
