from fastapi.testclient import TestClient

from app.main import create_app


def test_ui_gets_a_strict_policy(client):
    headers = client.get("/").headers
    policy = headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_api_responses_carry_the_headers_too(client):
    assert client.get("/api/v1/models").headers["x-content-type-options"] == "nosniff"


def test_only_the_docs_page_allows_its_inline_initialiser(client):
    assert "'unsafe-inline'" in client.get("/docs").headers["content-security-policy"]


def test_cors_is_off_unless_configured(client, settings):
    preflight = {"Origin": "https://lab.example", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in client.options("/api/v1/predict", headers=preflight).headers
    )
    allowed = settings.model_copy(update={"cors_origins": ["https://lab.example"]})
    with TestClient(create_app(allowed)) as open_client:
        response = open_client.options("/api/v1/predict", headers=preflight)
    assert response.headers["access-control-allow-origin"] == "https://lab.example"


def test_hsts_is_a_setting_off_by_default(client, settings):
    assert "strict-transport-security" not in client.get("/healthz").headers
    behind_tls = settings.model_copy(update={"hsts_max_age_seconds": 31_536_000})
    with TestClient(create_app(behind_tls)) as tls_client:
        header = tls_client.get("/healthz").headers["strict-transport-security"]
    assert header == "max-age=31536000; includeSubDomains"
