"""`python -m app [--host H] [--port P]`: serve LeukoLens with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from app.logging_config import logging_config
from app.settings import get_settings


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
    )


if __name__ == "__main__":
    main()
