"""A time budget per request, and a stop signal for clients that have gone.

A decode or a preprocessing step in a worker thread cannot be interrupted, so the work checks
its budget between steps: past the deadline, or once the client has disconnected, the next
`check_budget()` raises and the thread is free for the next request. The budget travels in a
context variable, which the prediction service copies into its worker threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeVar

from app.inference.upload_checks import UploadRejectedError

T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.05
CLIENT_CLOSED_REQUEST = 499  # nginx's code: nobody is left to read it
WAITING = "waiting for a worker"


class ClientGoneError(UploadRejectedError):
    def __init__(self) -> None:
        super().__init__(CLIENT_CLOSED_REQUEST, "the client closed the request")


class WorkBudget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._gone = threading.Event()

    def client_gone(self) -> None:
        self._gone.set()

    def restart(self) -> None:
        """A new file of the same request gets the whole budget again (a batch's budget is
        per file, so one slow file cannot spend its neighbours' time)."""
        self.deadline = time.monotonic() + self.seconds

    @property
    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def is_client_gone(self) -> bool:
        return self._gone.is_set()

    def check(self, step: str) -> None:
        if self._gone.is_set():
            raise ClientGoneError
        if time.monotonic() <= self.deadline:
            return
        if step == WAITING:
            raise UploadRejectedError(
                503, f"the server is busy: no worker was free within {self.seconds:g} s"
            )
        raise UploadRejectedError(
            413,
            f"{step} took longer than the {self.seconds:g} s budget per request; "
            "send a smaller image",
        )


current_budget: ContextVar[WorkBudget | None] = ContextVar("current_budget", default=None)


def check_budget(step: str) -> None:
    """Stop here when the request's budget is spent or its client has gone; else a no-op."""
    budget = current_budget.get()
    if budget is not None:
        budget.check(step)


def restart_budget() -> None:
    """Give the next file of this request the whole budget (a no-op outside a request)."""
    budget = current_budget.get()
    if budget is not None:
        budget.restart()


def seconds_left(default: float) -> float:
    """What remains of this request's budget; `default` outside a request."""
    budget = current_budget.get()
    return default if budget is None else budget.seconds_left


def client_has_gone() -> bool:
    """Whether this request's client has left (never outside a request). Unlike
    `check_budget`, the clock does not count: work already paid for is still answered late."""
    budget = current_budget.get()
    return budget is not None and budget.is_client_gone


@asynccontextmanager
async def budgeted(seconds: float) -> AsyncIterator[WorkBudget]:
    budget = WorkBudget(seconds)
    token = current_budget.set(budget)
    try:
        yield budget
    finally:
        current_budget.reset(token)


async def unless_client_gone(
    work: Awaitable[T], is_disconnected: Callable[[], Awaitable[bool]], budget: WorkBudget
) -> T:
    """Await the work while watching the connection; a client that leaves stops it."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()
            if await is_disconnected():
                budget.client_gone()
                task.cancel()
                raise ClientGoneError
    finally:
        if not task.done():
            task.cancel()
