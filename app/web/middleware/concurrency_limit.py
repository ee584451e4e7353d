"""A bound on requests in progress that never refuses the health checks.

uvicorn's own `limit_concurrency` answered 503 to every request beyond it, `/healthz` included:
300 slow connections made a healthy pod fail its liveness probe and be restarted.
This limit counts requests in progress here instead and answers the same 503 beyond it, except
to the health paths, which are cheap and must answer for the process whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.middleware.refusals import answer_busy, refusal_headers


class ConcurrencyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limit: int, exempt: Collection[str], drain_limit: int
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.drain_limit = drain_limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"].rstrip("/") or "/") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await answer_busy(scope, receive, send, refusal_headers(scope, self.drain_limit))
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
