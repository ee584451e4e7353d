"""The in-flight limit on prediction requests, at the edge: an upload still arriving holds none.

A request counts as in flight from its admission, its body in whole, until it is answered: an
upload still arriving costs no worker time yet, so a crowd of slow uploads cannot take the
slots that complete requests need (how slow a body may be is `BodySizeLimitMiddleware`'s
business). The count itself is the prediction service's (app/inference/in_flight.py, the one
count of requests in flight); this layer reads it and refuses early, both times 503 with
`Retry-After`:

- when the head arrives and every slot is already held by complete requests, at once, before a
  byte of the body is read (real overload: the upload would only be thrown away);
- when the body is complete and the slots have filled up while it arrived.

Between a body completing and its admission, another may take the last place: the count's own
refusal (the same 503) settles it.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.inference.in_flight import InFlight
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
        self, app: ASGIApp, *, in_flight: InFlight, paths: Collection[str], drain_limit: int
    ) -> None:
        self.app = app
        self.in_flight = in_flight
        self.paths = frozenset(paths)
        self.drain_limit = drain_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight.full:
            await answer_busy(scope, receive, send, refusal_headers(scope, self.drain_limit))
            return
        refusal: BodyRefusedError | None = None

        async def watching_receive() -> Message:
            """Refuses with the body's last chunk when no place is left."""
            nonlocal refusal
            if refusal is not None:
                raise refusal
            message = await receive()
            body_complete = message["type"] == "http.request" and not message.get("more_body")
            if body_complete and self.in_flight.full:
                refusal = BodyRefusedError(
                    503, BUSY, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
                )
                raise refusal
            return message

        async def busy(_: BodyRefusedError) -> None:
            # The body has been read whole: the connection can stay open for the retry.
            await answer_busy(scope, receive, send)

        await run_refusing_bodies(self.app, scope, watching_receive, send, lambda: refusal, busy)
