"""The browser UI: server-rendered pages; behaviour lives in static/app.js, never inline."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.dependencies import RegistryDep, SettingsDep
from app.model_registry import UnknownModelError
from app.settings import PACKAGE_DIR

templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")


router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def upload_page(request: Request, registry: RegistryDep, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "models": sorted(registry.models),
            "model_options": [
                {
                    "id": model_id,
                    "explains": classifier.explains,
                    "tta_default": classifier.tta_by_default,
                }
                for model_id, classifier in sorted(registry.models.items())
            ],
            "default_model": registry.default_id,
            "max_batch_files": settings.max_batch_files,
            "max_upload_mb": settings.max_upload_bytes // (1024 * 1024),
            "api_key_required": settings.api_key is not None,
        },
    )


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(request: Request, model_id: str, registry: RegistryDep) -> HTMLResponse:
    try:
        manifest = registry.get(model_id).manifest
    except UnknownModelError as error:
        raise HTTPException(404, str(error)) from error
    return templates.TemplateResponse(
        request,
        "model.html",
        {
            "card": manifest,
            "is_default": model_id == registry.default_id,
            "models": sorted(registry.models),
        },
    )
