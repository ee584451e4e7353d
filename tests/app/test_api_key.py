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
