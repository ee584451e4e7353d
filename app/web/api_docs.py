"""OpenAPI docs at /docs served from local files: FastAPI's default loads Swagger UI from a
CDN, which a hospital network without the internet cannot reach. Swagger UI 5 is vendored
under static/swagger-ui (see its VERSION.txt): version 4 cannot read OpenAPI 3.1. The page is
our own (language, landmark, contrast fixes in static/swagger-overrides.css) and has no
inline script: static/docs.js starts Swagger UI. The schema says exactly what the server
accepts."""

from __future__ import annotations

import copy
from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from app.settings import Settings
from app.web.middleware.api_key import accepted_keys

SWAGGER_PREFIX = "/static/swagger-ui"
UNAUTHORISED = 401
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="{prefix}/swagger-ui.css">
  <link rel="stylesheet" href="/static/swagger-overrides.css">
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  <script src="{prefix}/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""


def add_offline_docs(app: FastAPI) -> None:
    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(
            DOCS_PAGE.format(
                title=escape(f"{app.title} API"),
                prefix=SWAGGER_PREFIX,
                openapi_url=escape(app.openapi_url or "/openapi.json"),
            )
        )


def openapi_matching_the_server(app: FastAPI, settings: Settings) -> None:
    """The schema says what the server accepts: the API-key scheme and 401 only when a key
    is set, non-empty files, 1 to max_batch_files per batch, and the model ids it serves."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = copy.deepcopy(base_openapi())
        service = getattr(app.state, "service", None)
        model_ids = sorted(service.registry.models) if service is not None else None
        _tighten(schema, settings, model_ids)
        if model_ids is not None:  # complete only once the models are loaded
            app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _tighten(schema: dict[str, Any], settings: Settings, model_ids: list[str] | None) -> None:
    components = schema.setdefault("components", {})
    keyed = bool(accepted_keys(settings))
    sample_id = {"type": "string", "pattern": f"^(?:{settings.sample_id_pattern})$"}
    for body in components.get("schemas", {}).values():
        properties = body.get("properties", {})
        if body.get("title") == "ReviewRequest":
            properties["sample_id"].update(sample_id)
        if "file" in properties:
            properties["file"]["minLength"] = 1
        if "files" in properties:
            properties["files"].update(minItems=1, maxItems=settings.max_batch_files)
            properties["files"].get("items", {})["minLength"] = 1
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            if not keyed:
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
                if parameter.get("name") == "sample_id":
                    schema_of = parameter["schema"]
                    options = schema_of.get("anyOf")
                    (options[0] if options else schema_of).update(sample_id)
                if parameter.get("name") == "model" and model_ids is not None:
                    parameter["schema"] = {
                        "anyOf": [{"enum": model_ids, "type": "string"}, {"type": "null"}]
                    }
    if not keyed:
        components.pop("securitySchemes", None)
