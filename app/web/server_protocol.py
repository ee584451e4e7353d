"""uvicorn's HTTP protocols with a deadline for the request head, and the choice between them.

uvicorn closes idle keep-alive connections, but a client that sends the first bytes of a
request and then the rest of its headers slowly (slowloris) keeps its connection for ever.
Here every request head, the first on a connection included, must be complete within the
header timeout or the connection is closed. Bodies are timed by `BodySizeLimitMiddleware`.

Two parsers carry the deadline: httptools (C, the default where it is installed, as it is in
uvicorn's own production setup) and h11 (pure Python, always there;
`LEUKOLENS_HTTP_IMPLEMENTATION=h11`).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import HttpImplementation


class _HeadDeadline:
    """The timer both protocols share: armed while a head is awaited, closed when it fires."""

    header_timeout_seconds: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_seconds, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._awaiting_head():
            self.transport.close()
        else:  # a request still arriving: look again later rather than forget the connection
            self._arm_head_timer()

    def _awaiting_head(self) -> bool:
        return True


class HeaderTimeoutProtocol(_HeadDeadline, H11Protocol):
    """h11: a head is awaited while the client's side of the connection is IDLE."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE


def _httptools_protocol() -> type[asyncio.Protocol]:
    """Defined on first use, so that h11 alone serves where httptools is not installed."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
        """httptools: a head is awaited from connect, and after each response unless a
        pipelined request (whose head is complete) starts at once; a complete head disarms."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._disarm_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            starts_pipelined_request = bool(self.pipeline)
            super().on_response_complete()
            if not starts_pipelined_request and not self.transport.is_closing():
                self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

    return HeaderTimeoutHttpToolsProtocol


def installed(module: str) -> bool:
    """Importable, as uvicorn's own `auto` asks (a module found but failing to import is not)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def resolve_http(implementation: HttpImplementation) -> Literal["httptools", "h11"]:
    if implementation == "auto":
        return "httptools" if installed("httptools") else "h11"
    return implementation


def header_timeout_protocol(
    seconds: float, implementation: HttpImplementation = "auto"
) -> type[asyncio.Protocol]:
    """The protocol class for `uvicorn.run(http=...)` with this head deadline."""
    if resolve_http(implementation) == "httptools":
        base = _httptools_protocol()
    else:
        base = HeaderTimeoutProtocol
    return type(f"Configured{base.__name__}", (base,), {"header_timeout_seconds": seconds})
