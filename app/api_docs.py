"""OpenAPI docs at /docs served from local files: FastAPI's default loads Swagger UI from a
CDN, which a hospital network without the internet cannot reach. Swagger UI 5 is vendored
under static/swagger-ui (see its VERSION.txt): version 4 cannot read OpenAPI 3.1. The page is
our own (language, landmark, contrast fixes in static/swagger-overrides.css) and has no
inline script: static/docs.js starts Swagger UI."""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

SWAGGER_PREFIX = "/static/swagger-ui"
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
