"""Who decided: the reviewer a decision is recorded under, from the deployment, not the client.

Anyone holding the shared API key could post a decision under any name, and the latest one
counts. Where the deployment can say who is at the keyboard, the record takes its word:

- `LEUKOLENS_REVIEWER_HEADER` (e.g. X-Forwarded-User): the lab's single sign-on proxy names
  the signed-in user. The header is believed only from `LEUKOLENS_TRUSTED_PROXIES` (the TCP
  peer's address: `python -m app` then turns uvicorn's X-Forwarded-For rewriting off); sent
  from anywhere else it is refused 403, and a decision without it is refused 401.
- `LEUKOLENS_REVIEWER_KEYS`: each reviewer's own key in X-API-Key names them (compared in
  constant time against every key); the shared key names nobody and cannot decide (403).

With either, a `reviewer` in the JSON may be left out; if sent, it must be the authenticated
name, else 403: a client that thinks it records someone else learns that it does not. With
neither, the typed name is recorded as it is, and the record says so (`free_text`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import IPvAnyNetwork

from app.schemas import ReviewerSource
from app.settings import REVIEWER_NAME_MAX, Settings
from app.web.middleware.api_key import API_KEY_HEADER, key_matches, matches_any

FREE_TEXT_MISSING = "name the reviewer: this server authenticates none, so 'reviewer' is required"


@dataclass(frozen=True)
class Reviewer:
    name: str
    source: ReviewerSource


def peer_is_trusted(host: str | None, proxies: Sequence[IPvAnyNetwork]) -> bool:
    """The connection's own address is in the allow-list (an IPv4-mapped IPv6 address counts
    as its IPv4 one); a peer that is not an address at all is not trusted."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in proxies)


def reviewer_from_header(
    request: Request, header: str, proxies: Sequence[IPvAnyNetwork]
) -> Reviewer:
    """The sign-on proxy's word, from the proxy only."""
    values = request.headers.getlist(header)
    if not values:
        raise HTTPException(
            401,
            f"no {header} header: sign in through the lab's single sign-on to record decisions",
        )
    peer = request.client.host if request.client is not None else None
    if not peer_is_trusted(peer, proxies):
        raise HTTPException(
            403,
            f"{header} is honoured only from the sign-on proxy (LEUKOLENS_TRUSTED_PROXIES); "
            "this request came from another address",
        )
    if len(values) != 1:
        raise HTTPException(403, f"{header} was sent {len(values)} times: who decided is unclear")
    name = values[0].strip()
    if not name:
        raise HTTPException(401, f"{header} is empty: nobody is signed in")
    if len(name) > REVIEWER_NAME_MAX:
        raise HTTPException(403, f"{header} is longer than {REVIEWER_NAME_MAX} characters")
    return Reviewer(name, "sso_header")


def reviewer_from_key(request: Request, settings: Settings) -> Reviewer:
    """The reviewer whose own key was sent; every key is compared, whichever matches."""
    offered = request.headers.get(API_KEY_HEADER)
    found: str | None = None
    for name, key in settings.reviewer_keys.items():
        if key_matches(offered, key):
            found = name
    if found is not None:
        return Reviewer(found, "reviewer_key")
    shared = [settings.api_key] if settings.api_key is not None else []
    if matches_any(offered, shared):
        raise HTTPException(
            403,
            "the shared API key names no reviewer: record decisions with your own key "
            "(LEUKOLENS_REVIEWER_KEYS)",
        )
    raise HTTPException(
        401, "missing or invalid API key", headers={"WWW-Authenticate": API_KEY_HEADER}
    )


async def authenticated_reviewer(request: Request) -> Reviewer | None:
    """The reviewer the deployment vouches for; None where it configures no identity."""
    settings: Settings = request.app.state.settings
    if settings.reviewer_header is not None:
        return reviewer_from_header(request, settings.reviewer_header, settings.trusted_proxies)
    if settings.reviewer_keys:
        return reviewer_from_key(request, settings)
    return None


def who_decided(claimed: str | None, authenticated: Reviewer | None) -> Reviewer:
    """The name a decision is recorded under: the authenticated one, which a claimed name must
    not contradict (403); without one, the claimed name, marked as free text."""
    if authenticated is None:
        if claimed is None:
            raise RequestValidationError(
                [
                    {
                        "type": "missing",
                        "loc": ("body", "reviewer"),
                        "msg": FREE_TEXT_MISSING,
                        "input": None,
                    }
                ]
            )
        return Reviewer(claimed, "free_text")
    if claimed is not None and claimed != authenticated.name:
        raise HTTPException(
            403,
            f"you are authenticated as {authenticated.name!r}: a decision is recorded under "
            "that name; leave 'reviewer' out or send that name",
        )
    return authenticated
