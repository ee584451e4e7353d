def test_list_models_marks_the_default(client):
    body = client.get("/api/v1/models").json()
    assert body["default"] == "brightness"
    assert [m["id"] for m in body["models"]] == ["brightness", "brightness-64"]
    assert [m["default"] for m in body["models"]] == [True, False]
    assert body["models"][1]["input_size"] == 64


def test_model_card_is_the_manifest(client):
    from app.manifest import load_manifest

    body = client.get("/api/v1/models/brightness-64").json()
    assert body["default"] is False
    manifest = load_manifest(client.app.state.settings.model_store / "brightness-64")
    assert body["manifest"] == manifest.model_dump(mode="json")


def test_unknown_model_card_is_404(client):
    response = client.get("/api/v1/models/unknown")
    assert response.status_code == 404
    assert "unknown model" in response.json()["detail"]


def test_openapi_documents_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/predict",
        "/api/v1/predict/batch",
        "/api/v1/models",
        "/api/v1/models/{model_id}",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200
