def test_list_models_marks_the_default(client):
    body = client.get("/api/v1/models").json()
    assert body["default"] == "brightness"
    assert [m["id"] for m in body["models"]] == ["brightness", "brightness-64"]
    assert [m["default"] for m in body["models"]] == [True, False]
    assert body["models"][1]["input_size"] == 64


def test_model_card_is_the_manifest(client):
    from app.core.manifest import load_manifest

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


def test_an_adapted_model_is_served_beside_its_parent_and_says_where_it_came_from(tmp_path):
    from fastapi.testclient import TestClient

    from app.core.model_registry import StoreIndex, record_model
    from app.main import create_app
    from app.settings import Settings
    from tests.conftest import write_channel_mean_model
    from tests.training.release.test_adaptation import write_site
    from training.release.adaptation import adapt_model

    store = tmp_path / "store"
    parent = write_channel_mean_model(store / "parent", (4.0, 0.0, 0.0))
    record_model(store, parent, default=True)
    reviews = write_site(tmp_path / "site", 3, cells=3)
    adapt_model(
        parent,
        reviews,
        tmp_path / "site",
        store / "site",
        strength="head_refit",
        model_id="site",
        resamples=50,
    )
    index = StoreIndex.read(store)
    assert index.default == "parent"  # the adapted model is recorded, never made the default
    assert set(index.card_checksums) == {"parent", "site"}
    settings = Settings(model_store=store, audit_log_path=tmp_path / "audit.sqlite3")
    with TestClient(create_app(settings)) as client:
        listed = {m["id"]: m for m in client.get("/api/v1/models").json()["models"]}
        assert listed["site"]["adapted_from"] == "parent v1"
        assert listed["parent"]["adapted_from"] is None
        adaptation = client.get("/api/v1/models/site/adaptation").json()
        assert adaptation["strength"] == "head_refit"
        assert adaptation["after"]["metrics"]["cells"] == 18
        assert client.get("/api/v1/models/parent/adaptation").status_code == 404
        page = client.get("/models/site").text
        assert "Adapted for this lab" in page
        assert 'href="/models/parent"' in page
        cell = (tmp_path / "site" / "A0_0.png").read_bytes()
        answer = client.post("/api/v1/predict?model=site", files={"file": ("c.png", cell)})
        assert answer.json()["model"] == {"id": "site", "version": "1"}
