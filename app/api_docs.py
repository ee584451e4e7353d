"""OpenAPI docs at /docs served from local files (FastAPI's default loads Swagger UI from a
CDN, which a hospital network without the internet cannot reach), and a schema that says
exactly what the server accepts."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.settings import Settings

SWAGGER_PREFIX = "/swagger-ui"
UNAUTHORISED = 401


def add_offline_docs(app: FastAPI) -> None:
    app.mount(SWAGGER_PREFIX, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_PREFIX}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )


def openapi_matching_the_server(app: FastAPI, settings: Settings) -> None:
    """The schema says what the server accepts: the API-key scheme and 401 only when a key
    is set, non-empty files, 1 to max_batch_files per batch, and the model ids it serves."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = copy.deepcopy(base_openapi())
        engine = getattr(app.state, "engine", None)
        model_ids = sorted(engine.registry.models) if engine is not None else None
        _tighten(schema, settings, model_ids)
        if model_ids is not None:  # complete only once the models are loaded
            app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _tighten(schema: dict[str, Any], settings: Settings, model_ids: list[str] | None) -> None:
    components = schema.setdefault("components", {})
    for body in components.get("schemas", {}).values():
        properties = body.get("properties", {})
        if "file" in properties:
            properties["file"]["minLength"] = 1
        if "files" in properties:
            properties["files"].update(minItems=1, maxItems=settings.max_batch_files)
            properties["files"].get("items", {})["minLength"] = 1
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            if settings.api_key is None:
                operation.pop("security", None)
            elif "security" in operation:
                operation.setdefault("responses", {})[str(UNAUTHORISED)] = {
                    "description": "missing or invalid API key (X-API-Key)",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                        }
                    },
                }
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "model" and model_ids is not None:
                    parameter["schema"] = {
                        "anyOf": [{"enum": model_ids, "type": "string"}, {"type": "null"}]
                    }
    if settings.api_key is None:
        components.pop("securitySchemes", None)
