"""Each part of a multipart upload is held to the per-file limit as its bytes arrive.

The body limit bounds a whole request, but a batch body may hold several files, and Starlette
spools a file part to a temporary file on disk once it passes its spooling threshold (the
per-file limit): a part just over the limit was written to TMPDIR before the route refused it,
and a batch of one large part filled a small /tmp. Here python-multipart's streaming parser,
the one Starlette parses the form with, reads the same chunks first and counts each part's
bytes; the chunk that takes a part past the limit is never handed on, and the request gets
413 at once with its connection closed. Every part the application sees is within the
spooling threshold, so it stays in memory and TMPDIR stays empty whatever is uploaded.
"""

from __future__ import annotations

from collections.abc import Collection

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.middleware.refusals import BodyRefusedError, answer_json, run_refusing_bodies

CLOSE = {"Connection": "close"}


class PartTooLargeError(Exception):
    """A part passed the limit: raised from the parser's callback, where it was counted."""


class PartSizes:
    """Counts the bytes of each part of one multipart body as python-multipart splits it."""

    def __init__(self, boundary: bytes, limit: int) -> None:
        self.limit = limit
        self.current = 0
        self.counting = True
        self.parser = MultipartParser(
            boundary, {"on_part_begin": self._begin, "on_part_data": self._data}
        )

    def _begin(self) -> None:
        self.current = 0

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.current += end - start
        if self.current > self.limit:
            raise PartTooLargeError

    def feed(self, chunk: bytes) -> bool:
        """False once a part has passed the limit. A body the parser cannot read is left to
        the application, whose parser stops at the same byte and says so (400)."""
        try:
            self.parser.write(chunk)
        except PartTooLargeError:
            return False
        except FormParserError:
            self.counting = False
        return True


def multipart_boundary(scope: Scope) -> bytes | None:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    return boundary if isinstance(boundary, bytes) and boundary else None


class PartSizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_part_bytes: int, paths: Collection[str]) -> None:
        self.app = app
        self.max_part_bytes = max_part_bytes
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"].rstrip("/") or "/") not in self.paths:
            await self.app(scope, receive, send)
            return
        boundary = multipart_boundary(scope)
        if boundary is None:  # not a form: the route refuses it, with nothing to spool
            await self.app(scope, receive, send)
            return
        sizes = PartSizes(boundary, self.max_part_bytes)
        refusal: BodyRefusedError | None = None

        async def counted_receive() -> Message:
            nonlocal refusal
            if refusal is not None:
                raise refusal
            message = await receive()
            counted = message["type"] == "http.request" and sizes.counting
            if counted and not sizes.feed(message.get("body", b"")):
                refusal = BodyRefusedError(
                    413,
                    f"a file in the upload exceeds {self.max_part_bytes} bytes, the limit "
                    "per image (LEUKOLENS_MAX_UPLOAD_BYTES)",
                )
                raise refusal
            return message

        async def refuse(error: BodyRefusedError) -> None:
            await answer_json(scope, receive, send, error.status_code, error.detail, CLOSE)

        await run_refusing_bodies(self.app, scope, counted_receive, send, lambda: refusal, refuse)
