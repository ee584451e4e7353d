def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_after_warm_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "models": ["brightness", "brightness-64"],
        "providers": {
            "brightness": "CPUExecutionProvider",
            "brightness-64": "CPUExecutionProvider",
        },
    }


def test_asking_for_cuda_without_it_falls_back_to_the_cpu_and_says_so(settings, caplog):
    """Only the fallback path runs here (no GPU, no onnxruntime-gpu on this machine)."""
    import onnxruntime
    from fastapi.testclient import TestClient

    from app.main import create_app

    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    with TestClient(create_app(settings.model_copy(update={"execution_provider": "cuda"}))) as c:
        ready = c.get("/readyz").json()
        listed = c.get("/api/v1/models").json()["models"]
    assert set(ready["providers"].values()) == {"CPUExecutionProvider"}
    assert {model["provider"] for model in listed} == {"CPUExecutionProvider"}
    assert "the CUDA provider is unavailable" in caplog.text


def test_readyz_before_warm_up(client):
    client.app.state.service.registry.warmed_up = False
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "starting"
