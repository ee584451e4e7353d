import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.main import create_app


@pytest.fixture
def locked_client(settings):
    with TestClient(
        create_app(settings.model_copy(update={"api_key": SecretStr("s3cret-key")}))
    ) as client:
        yield client


def test_api_is_open_without_a_configured_key(client):
    assert client.get("/api/v1/models").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": "s3cret-ke"}])
def test_a_missing_or_wrong_key_is_401(locked_client, headers):
    response = locked_client.get("/api/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or invalid API key"}


def test_the_right_key_opens_the_api(locked_client, real_cell_png):
    headers = {"X-API-Key": "s3cret-key"}
    assert locked_client.get("/api/v1/models", headers=headers).status_code == 200
    response = locked_client.post(
        "/api/v1/predict", headers=headers, files={"file": ("c.png", real_cell_png)}
    )
    assert response.status_code == 200


def test_health_and_ui_stay_open_and_the_ui_asks_for_the_key(locked_client):
    assert locked_client.get("/healthz").status_code == 200
    assert locked_client.get("/readyz").status_code == 200
    assert 'id="api-key"' in locked_client.get("/").text


def test_the_key_is_not_in_the_openapi_document(locked_client):
    assert "s3cret-key" not in locked_client.get("/openapi.json").text


MULTIPART = ("content-type", "multipart/form-data; boundary=b")


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(locked_client, asgi_post):
    """With the key set, a 1.2 GB upload without it was once received (and spooled to
    disk) before the 401. Now not one chunk of the body is pulled."""
    chunks = [b"x" * 65536] * 100
    for headers in ([MULTIPART], [MULTIPART, ("x-api-key", "wrong")]):
        pulled, status, body = asgi_post(
            locked_client.app, "/api/v1/predict", chunks, headers, portal=locked_client.portal
        )
        assert (pulled, status) == (0, 401)
        assert body == {"detail": "missing or invalid API key"}


def test_metrics_ask_for_the_key_unless_configured_open(locked_client, settings):
    assert locked_client.get("/metrics").status_code == 401
    assert locked_client.get("/metrics", headers={"X-API-Key": "s3cret-key"}).status_code == 200
    scrapable = settings.model_copy(
        update={"api_key": SecretStr("s3cret-key"), "metrics_require_api_key": False}
    )
    with TestClient(create_app(scrapable)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/v1/models").status_code == 401


def test_the_schema_declares_the_key_and_401_only_when_a_key_is_set(client, locked_client):
    open_schema = client.get("/openapi.json").json()
    locked_schema = locked_client.get("/openapi.json").json()
    open_predict = open_schema["paths"]["/api/v1/predict"]["post"]
    locked_predict = locked_schema["paths"]["/api/v1/predict"]["post"]
    assert "securitySchemes" not in open_schema.get("components", {})
    assert "security" not in open_predict
    assert "401" not in open_predict["responses"]
    assert "APIKeyHeader" in locked_schema["components"]["securitySchemes"]
    assert locked_predict["security"] == [{"APIKeyHeader": []}]
    assert "401" in locked_predict["responses"]
    assert "401" in locked_schema["paths"]["/api/v1/models"]["get"]["responses"]


def test_each_reviewers_own_key_opens_the_api_like_the_shared_one(settings):
    """A reviewer's key (LEUKOLENS_REVIEWER_KEYS) names who decides; it must also
    pass the key check, the shared key or not, and the schema must say a key is needed."""
    only_reviewers = settings.model_copy(update={"reviewer_keys": {"Dr A": SecretStr("a-key")}})
    with TestClient(create_app(only_reviewers)) as client:
        assert client.get("/api/v1/models").status_code == 401
        assert client.get("/api/v1/models", headers={"X-API-Key": "a-key"}).status_code == 200
        assert client.get("/metrics", headers={"X-API-Key": "a-key"}).status_code == 200
        schema = client.get("/openapi.json").json()
        assert "APIKeyHeader" in schema["components"]["securitySchemes"]
        assert 'id="api-key"' in client.get("/").text
    both = only_reviewers.model_copy(update={"api_key": SecretStr("s3cret-key")})
    with TestClient(create_app(both)) as client:
        for key, status in (("s3cret-key", 200), ("a-key", 200), ("a-ke", 401), ("", 401)):
            assert client.get("/api/v1/models", headers={"X-API-Key": key}).status_code == status
