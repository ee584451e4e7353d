"""Whom the server takes the caller for: the page shows the name a decision is recorded under
and never asks for one the server already knows."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.web.api.bodies import ErrorResponse, WhoAmI
from app.web.api.deps import CallerDep, ReviewRecordsDep, SettingsDep

router = APIRouter(tags=["review"])


@router.get(
    "/whoami",
    response_model=WhoAmI,
    responses={401: {"model": ErrorResponse, "description": "no key, or nobody signed in"}},
)
async def whoami(caller: CallerDep, settings: SettingsDep, records: ReviewRecordsDep) -> WhoAmI:
    """The reviewer this caller's decisions are recorded under: the reviewer's own key or the
    signed-in user; or why there is none (a typed name counts, or the shared key names
    nobody)."""
    durable = records.durable
    if caller.source == "reviewer_key" or caller.source == "sso_header":
        return WhoAmI(reviewer=caller.name, reviewer_source=caller.source, durable=durable)
    if settings.reviewer_header is not None:
        raise HTTPException(
            401,
            f"no {settings.reviewer_header} header: nobody is signed in through the lab's "
            "single sign-on",
        )
    if settings.reviewer_keys:
        return WhoAmI(reviewer=None, reviewer_source="shared_key", durable=durable)
    return WhoAmI(reviewer=None, reviewer_source="free_text", durable=durable)
