"""The browser UI: server-rendered pages; behaviour lives in static/js/ modules, never inline."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.error_rates import error_rates_sentence
from app.core.model_registry import ModelRegistry, UnknownModelError
from app.settings import TEMPLATES_DIR
from app.web.api.deps import RegistryDep, SampleIdsDep, SettingsDep
from app.web.middleware.api_key import accepted_keys
from app.web.model_card_view import (
    card_view,
    human_model_name,
    readable_metric,
    without_local_paths,
)

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["no_local_paths"] = without_local_paths
templates.env.filters["metric_name"] = readable_metric
# Paths answered as JSON even for a browser: the API and the machine-facing endpoints.
JSON_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/static/")

router = APIRouter(include_in_schema=False)


def nav_models(registry: ModelRegistry) -> list[dict[str, str]]:
    return [
        {"id": model_id, "name": human_model_name(classifier.manifest)}
        for model_id, classifier in sorted(registry.models.items())
    ]


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
def upload_page(
    request: Request, registry: RegistryDep, settings: SettingsDep, sample_ids: SampleIdsDep
) -> HTMLResponse:
    """The settings the page's scripts need come with it, as data attributes: the scripts
    hold no copy of a server setting."""
    default_first = sorted(
        registry.models.items(), key=lambda i: (i[0] != registry.default_id, i[0])
    )
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "nav_models": nav_models(registry),
            "model_options": [
                {
                    "id": model_id,
                    "name": human_model_name(classifier.manifest),
                    "explains": classifier.explains,
                    "tta_default": classifier.tta_by_default,
                    "calibrated": classifier.manifest.calibration is not None,
                    "error_rates": error_rates_sentence(classifier.manifest),
                    "grid": classifier.manifest.input.size // 16,
                }
                for model_id, classifier in default_first
            ],
            "default_model": registry.default_id,
            "max_batch_files": settings.max_batch_files,
            "max_upload_mb": settings.max_upload_bytes // (1024 * 1024),
            "max_upload_bytes": settings.max_upload_bytes,
            "sample_id_pattern": sample_ids.pattern,
            "sample_id_in_words": sample_ids.in_words,
            "key_required": bool(accepted_keys(settings)),
            "identity_mode": (
                "reviewer_keys"
                if settings.reviewer_keys
                else "sign_on"
                if settings.reviewer_header is not None
                else "free_text"
            ),
            "records_durable": not settings.records_in_memory,
        },
    )


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(request: Request, model_id: str, registry: RegistryDep) -> HTMLResponse:
    try:
        manifest = registry.get(model_id).manifest
    except UnknownModelError as error:
        raise HTTPException(404, f"There is no model called {model_id!r} here.") from error
    return templates.TemplateResponse(
        request,
        "model.html",
        {
            "card": manifest,
            "view": card_view(manifest),
            "is_default": model_id == registry.default_id,
            "nav_models": nav_models(registry),
        },
    )


def add_html_error_pages(app: FastAPI) -> None:
    """Errors on the UI's routes as a page a person can read; the API keeps its JSON."""

    @app.exception_handler(StarletteHTTPException)
    async def html_or_json(request: Request, error: StarletteHTTPException) -> Response:
        path = request.url.path
        wants_html = "text/html" in request.headers.get("accept", "")
        if path.startswith(JSON_PREFIXES) or not wants_html:
            return await http_exception_handler(request, error)
        service = getattr(request.app.state, "service", None)
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "status_code": error.status_code,
                "detail": _readable_detail(error),
                "nav_models": nav_models(service.registry) if service is not None else [],
            },
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )


def _readable_detail(error: StarletteHTTPException) -> str:
    if error.status_code == 404 and error.detail == "Not Found":
        return "This page does not exist."
    return error.detail if isinstance(error.detail, str) else "The request could not be answered."
