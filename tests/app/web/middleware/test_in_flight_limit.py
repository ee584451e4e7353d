from fastapi.testclient import TestClient

from app.main import create_app

MULTIPART = [("content-type", "multipart/form-data; boundary=b")]


def test_past_the_in_flight_limit_a_request_is_refused_before_its_body(settings, asgi_post):
    """Issue 16: the in-flight limit was checked only once the body had been read."""
    full = settings.model_copy(update={"max_in_flight": 1})
    with TestClient(create_app(full)) as client:
        limiter = client.app.middleware_stack
        while type(limiter).__name__ != "InFlightLimitMiddleware":
            limiter = limiter.app
        limiter.in_flight = 1  # one upload still arriving
        pulled, status, body = asgi_post(
            client.app, "/api/v1/predict", [b"x" * 65536] * 10, MULTIPART, portal=client.portal
        )
        assert (pulled, status) == (0, 503)
        assert body == {"detail": "the server is busy; retry shortly"}
        assert client.get("/api/v1/models").status_code == 200  # only uploads are counted
        limiter.in_flight = 0
        assert client.get("/healthz").status_code == 200


def test_the_count_goes_back_down_after_each_request(settings, real_cell_png):
    one_at_a_time = settings.model_copy(update={"max_in_flight": 1})
    with TestClient(create_app(one_at_a_time)) as client:
        for name in ("a.png", "b.png", "c.png", "junk.png"):
            data = real_cell_png if name != "junk.png" else b"junk"
            client.post("/api/v1/predict", files={"file": (name, data)})
        response = client.post("/api/v1/predict", files={"file": ("d.png", real_cell_png)})
    assert response.status_code == 200
