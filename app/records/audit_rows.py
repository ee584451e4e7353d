"""The audit's rows and errors, and the futures a submitter waits on until its rows are durable
(in the journal, else in the database) or given up on.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, fields

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from app.records import records_db


class AuditLogError(RuntimeError):
    """The audit database cannot be opened; the message names the file or the server."""


class AuditUnavailableError(RuntimeError):
    """Neither the journal nor the database could record a request's rows."""


@dataclass(frozen=True)
class AuditRecord:
    time: float
    request_id: str
    image_sha256: str
    model_id: str
    model_version: str
    probability_all: float
    label: str
    latency_ms: float
    client_request_id: str = ""
    item: int = 0
    outcome: str = records_db.ANSWERED
    """`not_answered` once the request was refused (503) after its row was kept."""


COLUMNS = [records_db.predictions.c[field.name] for field in fields(AuditRecord)]


@dataclass(frozen=True)
class Queued:
    """One request's rows and the future its submitter may wait on."""

    records: list[AuditRecord]
    written: Future[bool]
    """True once committed; False when given up on."""


def is_transient(error: SQLAlchemyError, sqlite: bool) -> bool:
    """Worth waiting for: a lock held by another writer, or a server that is away."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    if not sqlite:
        return True  # refused, reset, shutting down, starting up: all pass
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message


def settled_future(written: Future[bool]) -> Future[None]:
    """Done once the writer has committed the rows or given up on them."""
    settled: Future[None] = Future()
    written.add_done_callback(lambda _: settled.set_result(None))
    return settled


def done_future() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


def durable_future(journalled: Future[None], written: Future[bool], rows: int) -> Future[None]:
    """Done when the journal has the rows; else when the database has them; else failed."""
    durable: Future[None] = Future()

    def settle(error: BaseException | None = None) -> None:
        with contextlib.suppress(InvalidStateError):
            if error is None:
                durable.set_result(None)
            else:
                durable.set_exception(error)

    def after_write(future: Future[bool]) -> None:
        if future.result():
            settle()
        else:
            settle(AuditUnavailableError(f"{rows} audit row(s) could not be recorded"))

    def after_journal(future: Future[None]) -> None:
        if future.exception() is None:
            settle()
        else:
            written.add_done_callback(after_write)

    journalled.add_done_callback(after_journal)
    return durable
