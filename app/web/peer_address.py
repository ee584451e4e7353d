"""Whether the server in front of the app rewrites the connection's address from headers.

The sign-on header is believed from the proxies' own addresses only. uvicorn, started plainly
(`uvicorn app.main:app`, or as a gunicorn worker), wraps the app in its ProxyHeadersMiddleware:
a request from a peer in FORWARDED_ALLOW_IPS (127.0.0.1 by default) then carries the address
its X-Forwarded-For names, so a local client saying `X-Forwarded-For: 10.0.0.5` would pass
for the proxy at 10.0.0.5. No header can be told apart from the real peer once rewritten, so
the app refuses to start with a sign-on header under such a server. `python -m app` serves
without the rewriting.

The middleware awaits the app, so while the app runs (its start-up included) the middleware's
frame is on the stack below it; that is how it is found.
"""

from __future__ import annotations

import sys
from types import FrameType

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

REWRITING_CALLS = (ProxyHeadersMiddleware.__call__.__code__,)
REFUSAL = (
    "LEUKOLENS_REVIEWER_HEADER trusts the sign-on proxy by its address, but this server "
    "rewrites a client's address from X-Forwarded-For (uvicorn's proxy headers): any client "
    "could pass for the proxy. Serve with `python -m app`, or `uvicorn --no-proxy-headers`."
)


def server_rewrites_client_address() -> bool:
    """Called from the app (its lifespan): whether a proxy-headers layer runs around it."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code in REWRITING_CALLS:
            return True
        frame = frame.f_back
    return False
