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

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.middleware.refusals import (
    BUSY,
    RETRY_AFTER_SECONDS,
    BodyRefusedError,
    answer_busy,
    refusal_headers,
    run_refusing_bodies,
)


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
            await answer_busy(scope, receive, send, refusal_headers(scope, self.drain_limit))
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

        async def busy(_: BodyRefusedError) -> None:
            # The body has been read whole: the connection can stay open for the retry.
            await answer_busy(scope, receive, send)

        try:
            await run_refusing_bodies(
                self.app, scope, counting_receive, send, lambda: refusal, busy
            )
        finally:
            if holding:
                self.in_flight -= 1
