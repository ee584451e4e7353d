"""The in-flight limit on prediction requests: a slot is taken once a body has fully arrived.

A request counts as in flight from the moment its last body byte is in until it is answered:
an upload still arriving costs no worker time yet, so a crowd of slow uploads cannot take the
slots that complete requests need (issue 30; how slow a body may be is
`BodySizeLimitMiddleware`'s business). Two refusals, both 503 with `Retry-After`:

- when the head arrives and every slot is already held by complete requests, at once, before a
  byte of the body is read (real overload: the upload would only be thrown away);
- when the body is complete and the slots have filled up while it arrived.

The prediction service counts its own admissions once the uploads are parsed; that count is
never above this one, so its own 503 stays a backstop.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.middleware.body_size_limit import BodyRefusedError, refusal_headers

RETRY_AFTER_SECONDS = 1
BUSY = "the server is busy; retry shortly"


class InFlightLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, paths: Collection[str], drain_limit: int
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.paths = frozenset(paths)
        self.drain_limit = drain_limit
        self.in_flight = 0

    @property
    def full(self) -> bool:
        return self.in_flight >= self.max_in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.full:
            response = JSONResponse(
                {"detail": BUSY},
                status_code=503,
                headers={
                    "Retry-After": str(RETRY_AFTER_SECONDS),
                    **refusal_headers(scope, self.drain_limit),
                },
            )
            await response(scope, receive, send)
            return
        holding = False
        refusal: BodyRefusedError | None = None

        async def counting_receive() -> Message:
            """Takes the slot with the body's last chunk, or refuses when none is left."""
            nonlocal holding, refusal
            if refusal is not None:
                raise refusal
            message = await receive()
            body_complete = message["type"] == "http.request" and not message.get("more_body")
            if body_complete and not holding:
                if self.full:
                    refusal = BodyRefusedError(
                        503, BUSY, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
                    )
                    raise refusal
                self.in_flight += 1
                holding = True
            return message

        response_started = False

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refusal is not None:
                # Whatever the application made of the missing body, the client hears why.
                if not response_started:
                    response_started = True
                    await _busy(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyRefusedError as error:
            if error is not refusal or response_started:
                raise
            response_started = True
            await _busy(scope, receive, send)
        finally:
            if holding:
                self.in_flight -= 1


async def _busy(scope: Scope, receive: Receive, send: Send) -> None:
    # The body has been read whole: the connection can stay open for the retry.
    response = JSONResponse(
        {"detail": BUSY}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
    await response(scope, receive, send)
