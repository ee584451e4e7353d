"""The in-flight limit, applied when a prediction request arrives rather than after its body.

The prediction service counts requests once their uploads are in memory; counting here, before
the body is read, keeps a crowd of uploads from being received at all when the server is
already full.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.middleware.body_size_limit import refusal_headers

RETRY_AFTER_SECONDS = 1


class InFlightLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, paths: Collection[str], drain_limit: int
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.paths = frozenset(paths)
        self.drain_limit = drain_limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = JSONResponse(
                {"detail": "the server is busy; retry shortly"},
                status_code=503,
                headers={
                    "Retry-After": str(RETRY_AFTER_SECONDS),
                    **refusal_headers(scope, self.drain_limit),
                },
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
