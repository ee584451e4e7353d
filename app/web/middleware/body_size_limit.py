"""Each request's own body limit and body time, enforced as the bytes arrive.

A body declared too large (Content-Length) is refused before a byte of it is read; a chunked
or lying body is cut off at the limit of the route it is sent to (one image for
/predict, a batch for /predict/batch), so no more than that is ever held in memory, and
never on disk. A body that is not complete within the body timeout gets 408, and so, much
sooner, does one that falls below a minimum rate once a grace period is over: a client sending
nothing, or a byte a second, costs the server a few seconds rather than the whole timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.middleware.refusals import (
    BodyRefusedError,
    answer_json,
    declared_length,
    run_refusing_bodies,
)

# Connection: close, so that the server drops the rest of the body instead of reading it.
CLOSE = {"Connection": "close"}


class BodySizeLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, int],
        default_limit: int,
        body_timeout_seconds: float,
        min_bytes_per_second: float = 0.0,
        grace_seconds: float = 0.0,
    ) -> None:
        """`min_bytes_per_second`: after `grace_seconds`, the body must have kept up with this
        rate (0: no minimum, only the body timeout)."""
        self.app = app
        self.limits = dict(limits)
        self.default_limit = default_limit
        self.body_timeout_seconds = body_timeout_seconds
        self.min_bytes_per_second = min_bytes_per_second
        self.grace_seconds = grace_seconds

    def limit_for(self, path: str) -> int:
        return self.limits.get(path.rstrip("/") or "/", self.default_limit)

    def next_chunk_due(self, started: float, received: int) -> tuple[float, str]:
        """When the next chunk must have arrived, and why, given what has arrived so far.

        The rate's deadline moves on with every byte (`received / rate` seconds after the
        grace), so a body that keeps up on average never meets it, while one that stalls, or
        never starts, meets it as soon as it falls behind rather than at the body timeout.
        """
        timeout = started + self.body_timeout_seconds
        why = f"the body did not arrive within {self.body_timeout_seconds:g} s"
        if self.min_bytes_per_second > 0:
            behind = started + self.grace_seconds + received / self.min_bytes_per_second
            if behind < timeout:
                return behind, (
                    f"the body arrived slower than {self.min_bytes_per_second:g} bytes/s "
                    f"(after the first {self.grace_seconds:g} s)"
                )
        return timeout, why

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            detail = f"request body exceeds {limit} bytes"
            await answer_json(scope, receive, send, 413, detail, CLOSE)
            return
        refusal: BodyRefusedError | None = None
        received = 0
        body_done = False
        started = time.monotonic()

        async def limited_receive() -> Message:
            nonlocal received, body_done, refusal
            if refusal is not None:
                raise refusal
            if body_done:  # after the body only a disconnect can come: wait as long as it takes
                return await receive()
            deadline, why = self.next_chunk_due(started, received)
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                refusal = BodyRefusedError(408, why)
                raise refusal from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    refusal = BodyRefusedError(413, f"request body exceeds {limit} bytes")
                    raise refusal
            else:
                body_done = True
            return message

        async def refuse(error: BodyRefusedError) -> None:
            await answer_json(scope, receive, send, error.status_code, error.detail, CLOSE)

        await run_refusing_bodies(self.app, scope, limited_receive, send, lambda: refusal, refuse)
