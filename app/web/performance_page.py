"""The page at /performance: how the model does on the lab's own patients, in the lab's words.

Its figures are the API's (GET /api/v1/performance), computed by the same function. Where the
server asks for an API key, the records behind the page are behind it too: a browser that
opens the page without the key gets a form for it, and the page's script fetches the figures
with the key in the X-API-Key header (the same page, rendered with them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.web.api.deps import RegistryDep, ReviewRecordsDep, SettingsDep
from app.web.api.routes.performance import ModelQuery, Period, PeriodQuery, measure
from app.web.middleware.api_key import API_KEY_HEADER, accepted_keys, matches_any
from app.web.model_card_view import human_model_name
from app.web.pages import nav_models, templates
from app.web.performance_view import page_view

router = APIRouter(include_in_schema=False)


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else ""


@router.get("/performance", response_class=HTMLResponse)
def performance_page(
    request: Request,
    records: ReviewRecordsDep,
    registry: RegistryDep,
    settings: SettingsDep,
    model: ModelQuery = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    period: PeriodQuery = "month",
) -> HTMLResponse:
    keys = accepted_keys(settings)
    locked = bool(keys) and not matches_any(request.headers.get(API_KEY_HEADER), keys)
    chosen: Period = period
    context: dict[str, object] = {
        "nav_models": nav_models(registry),
        "models": [
            {"id": model_id, "name": human_model_name(classifier.manifest)}
            for model_id, classifier in sorted(registry.models.items())
        ],
        "chosen_model": model or registry.default_id,
        "period": chosen,
        "since": _day(since),
        "until": _day(until),
        "locked": locked,
    }
    if not locked:
        figures = measure(
            records, registry, settings, model=model, since=since, until=until, period=period
        )
        context["view"] = page_view(figures)
        context["model_name"] = human_model_name(registry.get(figures.model.id).manifest)
    return templates.TemplateResponse(request, "performance.html", context)
