"""Answers a middleware gives instead of the application's: before the body is read, or once
the body it was reading has been refused, whatever the application made of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER_SECONDS = 1
BUSY = "the server is busy; retry shortly"


def declared_length(scope: Scope) -> int | None:
    declared = dict(scope["headers"]).get(b"content-length", b"")
    return int(declared) if declared.isdigit() else None


def refusal_headers(scope: Scope, drain_limit: int) -> dict[str, str]:
    """Headers for an answer given before the body was read.

    A small declared body is left to the server, which reads and discards it once the answer
    is sent, so that the client, still sending, can read the answer; closing on unread data
    would reset the connection and lose it. Anything larger, or of unknown length, is cut off.
    """
    length = declared_length(scope)
    return {} if length is not None and length <= drain_limit else {"Connection": "close"}


class BodyRefusedError(HTTPException):
    """Raised from `receive`: FastAPI passes HTTPExceptions raised while it parses a body
    through to its handler (any other error would become a 400)."""


async def answer_json(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str, headers: dict[str, str]
) -> None:
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(
        scope, receive, send
    )


async def answer_busy(
    scope: Scope, receive: Receive, send: Send, headers: dict[str, str] | None = None
) -> None:
    """503 with Retry-After: a client should come back shortly."""
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    await answer_json(scope, receive, send, 503, BUSY, retry)


async def run_refusing_bodies(
    app: ASGIApp,
    scope: Scope,
    guarded_receive: Receive,
    send: Send,
    refusal: Callable[[], BodyRefusedError | None],
    answer: Callable[[BodyRefusedError], Awaitable[None]],
) -> None:
    """Run `app` on `guarded_receive`; once that has raised `refusal()`, the client hears
    `answer(refusal)` instead of whatever the application made of the broken body."""
    response_started = False

    async def guarded_send(message: Message) -> None:
        nonlocal response_started
        refused = refusal()
        if refused is not None:
            if not response_started:
                response_started = True
                await answer(refused)
            return
        if message["type"] == "http.response.start":
            response_started = True
        await send(message)

    try:
        await app(scope, guarded_receive, guarded_send)
    except BodyRefusedError as error:
        if error is not refusal() or response_started:
            raise
        response_started = True
        await answer(error)
