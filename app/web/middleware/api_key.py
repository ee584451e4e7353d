"""Optional API-key authentication for /api (and /metrics): off unless LEUKOLENS_API_KEY or
LEUKOLENS_REVIEWER_KEYS is set.

`ApiKeyMiddleware` answers 401 from the request's headers alone, before a byte of its body is
read, so an unauthenticated client cannot make the server receive an upload. The route
dependency `require_api_key` (app/web/api/deps.py) checks again and puts the scheme into the
OpenAPI document. The shared key and every reviewer's own key open the API alike; which
reviewer a key names matters only for a decision (app/web/reviewer_identity.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi.security import APIKeyHeader
from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings
from app.web.middleware.refusals import refusal_headers

API_KEY_HEADER = "X-API-Key"
UNAUTHORISED_DETAIL = "missing or invalid API key"
# An unauthenticated body up to this size is discarded unread so that the client sees the 401;
# a larger one is cut off.
UNAUTHENTICATED_DRAIN_BYTES = 1024 * 1024

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required only when the server sets LEUKOLENS_API_KEY or reviewers' keys.",
)


def key_matches(offered: str | bytes | None, expected: SecretStr) -> bool:
    """Constant-time comparison: the time taken must not reveal how much of a guess was right."""
    if offered is None:
        return False
    if isinstance(offered, str):
        offered = offered.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(offered, expected.get_secret_value().encode("utf-8"))


def matches_any(offered: str | bytes | None, keys: Sequence[SecretStr]) -> bool:
    """Every key is compared, whichever matches: the time taken does not say which one did."""
    found = False
    for key in keys:
        found |= key_matches(offered, key)
    return found


def accepted_keys(settings: Settings) -> list[SecretStr]:
    """The keys that open the API: the shared one and each reviewer's; none: the API is open."""
    shared = [settings.api_key] if settings.api_key is not None else []
    return [*shared, *settings.reviewer_keys.values()]


class ApiKeyMiddleware:
    """401 on protected paths from the headers alone; CORS preflights pass (they carry none)."""

    def __init__(
        self, app: ASGIApp, *, api_keys: Sequence[SecretStr], protected: Sequence[str]
    ) -> None:
        self.app = app
        self.api_keys = tuple(api_keys)
        self.protected = tuple(protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] != "OPTIONS"
            and scope["path"].startswith(self.protected)
        ):
            offered = dict(scope["headers"]).get(API_KEY_HEADER.lower().encode("latin-1"))
            if not matches_any(offered, self.api_keys):
                response = JSONResponse(
                    {"detail": UNAUTHORISED_DETAIL},
                    status_code=401,
                    headers={
                        "WWW-Authenticate": API_KEY_HEADER,
                        **refusal_headers(scope, UNAUTHENTICATED_DRAIN_BYTES),
                    },
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
