"""Serve LeukoLens with uvicorn: the review page, the API and the model cards."""

from __future__ import annotations

import argparse
import textwrap

import uvicorn

from app.logging_config import logging_config
from app.settings import Settings, get_settings
from app.web.server_protocol import header_timeout_protocol

KEEP_ALIVE_SECONDS = 5
# The name people type (scripts/serve runs this module in .venv).
PROG = "./scripts/serve"
# The settings a first deployment sets; --help describes them and names every other one.
MAIN_SETTINGS = (
    "model_store",
    "default_model",
    "data_dir",
    "database_url",
    "api_key",
    "reviewer_keys",
    "reviewer_header",
    "trusted_proxies",
)


def environment_variable(field: str) -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def settings_epilog(width: int = 88) -> str:
    """The main LEUKOLENS_* variables with their descriptions, then every other one by name,
    all read from Settings so that the help cannot drift from it."""

    def indented(text: str) -> list[str]:
        return textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 6)

    lines = ["settings (environment variables, read at start-up; docs/deployment.md):"]
    for name in MAIN_SETTINGS:
        lines.append(f"  {environment_variable(name)}")
        lines.extend(indented(Settings.model_fields[name].description or ""))
    others = [environment_variable(name) for name in Settings.model_fields]
    main = {environment_variable(name) for name in MAIN_SETTINGS}
    lines.append("  and also:")
    lines.extend(indented(", ".join(name for name in others if name not in main)))
    return "\n".join(lines)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        epilog=settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=settings.host,
        help=f"address to listen on, 0.0.0.0 for every interface (default: {settings.host}, "
        f"from {environment_variable('host')} when set)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.port,
        help=f"port to listen on (default: {settings.port}, from {environment_variable('port')} "
        "when set)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="the least severe JSON log line written to stderr (default: info)",
    )
    return parser


def main() -> None:
    settings = get_settings()
    args = build_parser(settings).parse_args()
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
