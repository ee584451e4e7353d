def test_head_is_answered_wherever_get_is(client):
    """HEAD used to get 405 on every GET route, / included."""
    for path in ("/", "/healthz", "/readyz", "/api/v1/models", "/metrics", "/openapi.json"):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/api/v1/predict").status_code == 405
