def test_metrics_count_requests_inference_and_models(client, real_cell_png):
    client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    client.post("/api/v1/predict", files={"file": ("c.png", b"junk")})
    text = client.get("/metrics").text
    assert (
        'leukolens_http_requests_total{method="POST",route="/api/v1/predict",status="200"} 1.0'
        in text
    )
    assert (
        'leukolens_http_requests_total{method="POST",route="/api/v1/predict",status="400"} 1.0'
        in text
    )
    assert 'leukolens_inference_batch_size_count{model="brightness"} 1.0' in text
    assert "leukolens_inference_duration_seconds_bucket" in text
    assert "leukolens_requests_in_flight 0.0" in text
    assert (
        'leukolens_model_info{architecture="mean-brightness-test-graph",default="true",'
        'model="brightness",version="1"} 1.0' in text
    )


def test_metrics_use_route_templates_not_raw_paths(client):
    client.get("/api/v1/models/some-unknown-id")
    client.get("/api/v1/models/models")
    client.get("/static/style.css")
    text = client.get("/metrics").text
    assert 'route="/api/v1/models/{model_id}",status="404"} 2.0' in text
    assert "some-unknown-id" not in text
    assert 'route="other",status="200"} 1.0' in text


def test_made_up_method_names_fold_into_one_label(client):
    # TestClient passes any method token through, as uvicorn's h11 parser does.
    for number in range(50):
        client.request(f"BREW{number}", "/api/v1/models")
    text = client.get("/metrics").text
    assert "BREW" not in text
    assert 'method="OTHER"' in text
    series = [line for line in text.splitlines() if line.startswith("leukolens_http_requests")]
    assert len(series) < 20


def local_gauges(text: str) -> dict[str, str]:
    return {
        line.split("{")[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line.startswith("leukolens_local_") and 'model="redness"' in line
    }


def test_the_local_performance_gauges_follow_the_decisions(tmp_path):
    """Labelled by model id only, counted again when decisions arrive."""
    import time

    import numpy as np
    from fastapi.testclient import TestClient

    from app.core.model_registry import record_model
    from app.main import create_app
    from app.settings import Settings
    from tests.conftest import png_bytes, review_json, write_channel_mean_model

    model_store = tmp_path / "store"
    record_model(
        model_store, write_channel_mean_model(model_store / "redness", (8.0, 0, 0)), default=True
    )
    record_model(model_store, write_channel_mean_model(model_store / "plain", (0.0, 0, 0)))
    settings = Settings(
        model_store=model_store,
        worker_threads=1,
        audit_log_path=tmp_path / "audit.sqlite3",
        performance_refresh_seconds=0.1,
    )
    import cv2

    cells = []
    for radius in (26, 10):  # a large red cell is called ALL-like, a small one normal
        image = np.zeros((64, 64, 3), np.uint8)
        cv2.circle(image, (32, 32), radius, (255, 60, 60), -1)
        cells.append(png_bytes(image))
    with TestClient(create_app(settings)) as client:
        answers = [
            client.post(
                "/api/v1/predict?sample_id=LAB-G", files={"file": (f"{n}.png", data)}
            ).json()
            for n, data in enumerate(cells)
        ]
        assert {a["label"] for a in answers} == {"ALL", "HEM"}, answers
        deadline = time.monotonic() + 10
        while (
            local_gauges(client.get("/metrics").text).get("leukolens_local_reviewed_cells") != "0.0"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for answer in answers:  # both decided ALL: one found, one missed
            client.post(
                "/api/v1/reviews",
                json=review_json(answer, "LAB-G", decision="ALL", reviewer="Dr A"),
            ).raise_for_status()
        deadline = time.monotonic() + 10
        while (gauges := local_gauges(client.get("/metrics").text)).get(
            "leukolens_local_reviewed_cells"
        ) != "2.0":
            assert time.monotonic() < deadline, gauges
            time.sleep(0.1)
        assert gauges["leukolens_local_sensitivity"] == "0.5"
        assert gauges["leukolens_local_specificity"] == "NaN"  # no normal cell decided
        assert gauges["leukolens_local_performance_alert"] == "0.0"
        text = client.get("/metrics").text
        assert 'leukolens_local_sensitivity{model="redness"} 0.5' in text
        assert 'leukolens_local_reviewed_cells{model="plain"} 0.0' in text
