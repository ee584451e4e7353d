from functools import partial

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.web.middleware.body_size_limit import BodySizeLimitMiddleware


def make_app(limit: int = 100, *, body_timeout: float = 5.0) -> FastAPI:
    app = FastAPI()

    @app.post("/api/echo")
    @app.post("/other")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.post("/api/form")
    async def form(request: Request) -> dict[str, int]:
        return {"fields": len(await request.form())}

    app.add_middleware(
        BodySizeLimitMiddleware,
        limits={"/api/echo": limit, "/api/form": limit},
        default_limit=limit * 5,
        body_timeout_seconds=body_timeout,
    )
    return app


@pytest.fixture
def call(asgi_post):
    """Drive the ASGI app directly, with bodies that end: chunks pulled, status, JSON."""
    return partial(asgi_post, complete=True)


def test_declared_large_bodies_get_json_413_before_a_byte_is_read(call):
    chunks = [b"x" * 1000] * 1000  # a megabyte announced
    pulled, status, body = call(make_app(), "/api/echo", chunks, [("content-length", "1000000")])
    assert (pulled, status) == (0, 413)
    assert body == {"detail": "request body exceeds 100 bytes"}


def test_a_chunked_body_is_cut_off_at_the_limit_of_its_own_route(call):
    chunks = [b"x" * 60] * 10_000  # 600 kB, no Content-Length
    pulled, status, body = call(make_app(), "/api/echo", chunks)
    assert status == 413
    assert pulled == 2  # 120 bytes: the first chunk past the limit, nothing after it
    assert body == {"detail": "request body exceeds 100 bytes"}


def test_a_multipart_body_past_the_limit_is_413_not_a_parse_error(call):
    chunks = [b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n'] + [b"x" * 60] * 100
    headers = [("content-type", "multipart/form-data; boundary=b")]
    pulled, status, _ = call(make_app(), "/api/form", chunks, headers)
    assert status == 413
    assert pulled <= 3


def test_other_paths_get_the_default_limit(call):
    _, status, body = call(make_app(), "/other", [b"x" * 400])
    assert (status, body) == (200, {"received": 400})
    _, status, _ = call(make_app(), "/other", [b"x" * 400] * 2)
    assert status == 413


def test_a_body_that_trickles_past_the_timeout_is_408(call):
    chunks = [b"x"] * 50
    pulled, status, body = call(make_app(body_timeout=0.3), "/api/echo", chunks, delay=0.05)
    assert status == 408
    assert pulled < 50
    assert "0.3 s" in body["detail"]


def test_bodies_within_the_limit_pass():
    client = TestClient(make_app())
    assert client.post("/api/echo", content=b"x" * 100).json() == {"received": 100}
    assert client.post("/other", content=b"x" * 500).json() == {"received": 500}
