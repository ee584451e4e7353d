"""`python -m app [--host H] [--port P]`: serve LeukoLens with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from app.logging_config import logging_config
from app.settings import get_settings
from app.web.server_protocol import header_timeout_protocol

KEEP_ALIVE_SECONDS = 5


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=logging_config(args.log_level),
        access_log=False,  # our access log carries the request id and the route template
        # Slow clients: a deadline for each request head (bodies are timed by the app) and
        # idle keep-alive connections closed. No uvicorn limit_concurrency: it would answer
        # /healthz 503 too; the app's ConcurrencyLimitMiddleware bounds requests instead.
        http=header_timeout_protocol(settings.header_timeout_seconds, settings.http_implementation),
        loop=settings.event_loop,  # uvicorn's auto: uvloop where installed
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # With a sign-on header, the trusted-proxy check must see the TCP peer itself: uvicorn
        # would otherwise replace it with an address X-Forwarded-For names (the app refuses to
        # start under such a server: app/web/peer_address.py).
        proxy_headers=settings.reviewer_header is None,
    )


if __name__ == "__main__":
    main()
