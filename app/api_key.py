"""Optional API-key authentication for /api: off unless LEUKOLENS_API_KEY is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required only when the server sets LEUKOLENS_API_KEY.",
)


def require_api_key(
    request: Request, offered: Annotated[str | None, Security(api_key_header)]
) -> None:
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    # Constant-time comparison: the time taken must not reveal how much of a guess was right.
    if offered is None or not hmac.compare_digest(
        offered.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise HTTPException(
            401, "missing or invalid API key", headers={"WWW-Authenticate": API_KEY_HEADER}
        )
