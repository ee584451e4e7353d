"""Who is calling, and who decided: from the deployment, never from the client's say-so.

Every API request has an identity (app.core.identities): the reviewer whose own key it sent,
the user the sign-on proxy names, the shared key (which names nobody), or nobody on an open
server. An upload belongs to that identity and only it can withdraw the upload.

- `LEUKOLENS_REVIEWER_HEADER` (e.g. X-Forwarded-User): the lab's single sign-on proxy names
  the signed-in user. The header is believed only from `LEUKOLENS_TRUSTED_PROXIES`, judged by
  the TCP peer's own address (app/web/peer_address.py: a server that rewrites it from
  X-Forwarded-For is refused at start-up); sent from anywhere else it is refused 403, and a
  decision without it is refused 401.
- `LEUKOLENS_REVIEWER_KEYS`: each reviewer's own key in X-API-Key names them (compared in
  constant time against every key); the shared key names nobody and cannot decide (403).

With either, a `reviewer` in the JSON may be left out; if sent, it must be the authenticated
name, else 403: a client that thinks it records someone else learns that it does not. With
neither, the typed name is recorded as it is, and the record says so (`free_text`). A name
that is blank, merged from two headers (a comma) or holds control characters is refused 422.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import IPvAnyNetwork

from app.core.domain.reviews import ReviewerSource
from app.core.identities import ANONYMOUS, SHARED_KEY, Identity, reviewer_name_problem
from app.settings import Settings
from app.web.middleware.api_key import API_KEY_HEADER, accepted_keys, key_matches

FREE_TEXT_MISSING = "name the reviewer: this server authenticates none, so 'reviewer' is required"
SHARED_KEY_CANNOT_DECIDE = (
    "the shared API key names no reviewer: record decisions with your own key "
    "(LEUKOLENS_REVIEWER_KEYS)"
)


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


def signed_in_user(request: Request, header: str, proxies: Sequence[IPvAnyNetwork]) -> str | None:
    """The sign-on proxy's word, from the proxy only: the user's name, or None when the
    request names nobody (no header, or an empty one)."""
    values = request.headers.getlist(header)
    if not values:
        return None
    peer = request.client.host if request.client is not None else None
    if not peer_is_trusted(peer, proxies):
        raise HTTPException(
            403,
            f"{header} is honoured only from the sign-on proxy (LEUKOLENS_TRUSTED_PROXIES); "
            "this request came from another address",
        )
    if len(values) != 1:
        raise HTTPException(403, f"{header} was sent {len(values)} times: who decided is unclear")
    if not values[0].strip():
        return None
    problem = reviewer_name_problem(values[0])
    if problem is not None:
        raise HTTPException(422, f"{header}: {problem}")
    return values[0].strip()


def reviewer_for_key(request: Request, settings: Settings) -> str | None:
    """The reviewer whose own key was sent (every key is compared, whichever matches)."""
    offered = request.headers.get(API_KEY_HEADER)
    found: str | None = None
    for name, key in settings.reviewer_keys.items():
        if key_matches(offered, key):
            found = name
    return found


def _identify(request: Request, settings: Settings) -> Identity:
    if settings.reviewer_header is not None:
        user = signed_in_user(request, settings.reviewer_header, settings.trusted_proxies)
        if user is not None:
            return Identity(user, "sso_header")
    elif settings.reviewer_keys:
        reviewer = reviewer_for_key(request, settings)
        if reviewer is not None:
            return Identity(reviewer, "reviewer_key")
    # The key middleware let the request in: with keys configured, it holds the shared one.
    return SHARED_KEY if accepted_keys(settings) else ANONYMOUS


async def caller_identity(request: Request) -> Identity:
    """Whom the request comes from (worked out once per request)."""
    known: Identity | None = getattr(request.state, "caller", None)
    if known is None:
        known = _identify(request, request.app.state.settings)
        request.state.caller = known
    return known


async def authenticated_reviewer(request: Request) -> Reviewer | None:
    """The reviewer the deployment vouches for; None where it configures no identity (the
    typed name counts). 401 without a sign-on, 403 for the shared key among reviewers' keys."""
    settings: Settings = request.app.state.settings
    caller = await caller_identity(request)
    if caller.source == "sso_header" or caller.source == "reviewer_key":
        return Reviewer(caller.name, caller.source)
    if settings.reviewer_header is not None:
        raise HTTPException(
            401,
            f"no {settings.reviewer_header} header: sign in through the lab's single sign-on "
            "to record decisions",
        )
    if settings.reviewer_keys:
        raise HTTPException(403, SHARED_KEY_CANNOT_DECIDE)
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
