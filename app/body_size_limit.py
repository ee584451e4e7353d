"""413 as JSON for bodies whose declared Content-Length is over the limit.

FastAPI's `max_body_size` (set on the API router) counts the bytes of every body as they
arrive and answers 413 in JSON when a streamed body grows too large; a body *declared* too
large is refused by Starlette before any route runs, in plain text. This middleware answers
that case first, in the API's JSON error format.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class DeclaredBodySizeMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, path_prefix: str) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.path_prefix):
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                response = JSONResponse(
                    {"detail": f"request body exceeds {self.max_body_bytes} bytes"},
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
