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
