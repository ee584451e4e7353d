"""A real uvicorn process started the way the README and the Dockerfile start it."""

import httpx


def test_python_m_app_serves_predictions(start_server, model_store, real_cell_png):
    base = start_server(LEUKOLENS_MODEL_STORE=str(model_store))
    response = httpx.post(f"{base}/api/v1/predict", files={"file": ("cell.png", real_cell_png)})
    assert response.status_code == 200
    assert response.json()["model"]["id"] == "brightness"
    assert (
        httpx.post(f"{base}/api/v1/predict", files={"file": ("x.png", b"junk")}).status_code == 400
    )
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
