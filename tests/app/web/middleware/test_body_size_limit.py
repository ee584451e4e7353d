import json
import socket
import time
from functools import partial

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.web.middleware.body_size_limit import BodySizeLimitMiddleware


def make_app(
    limit: int = 100, *, body_timeout: float = 5.0, min_rate: float = 0.0, grace: float = 0.0
) -> FastAPI:
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
        min_bytes_per_second=min_rate,
        grace_seconds=grace,
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


def test_a_body_slower_than_the_minimum_rate_is_408_after_the_grace(call):
    """A byte a second once held a connection (and a slot) for the whole 60 s timeout."""
    app = make_app(body_timeout=60, min_rate=100, grace=0.2)
    chunks = [b"x"] * 200  # 20 bytes/s: ten seconds of body at this pace
    pulled, status, body = call(app, "/api/echo", chunks, delay=0.05)
    assert status == 408
    assert pulled < 40  # cut off soon after the grace, far from the end of the body
    assert body == {"detail": "the body arrived slower than 100 bytes/s (after the first 0.2 s)"}


def test_a_client_that_sends_no_body_at_all_is_408_after_the_grace(asgi_post):
    app = make_app(body_timeout=60, min_rate=100, grace=0.2)
    pulled, status, body = asgi_post(app, "/api/echo", [])  # nothing, and the body never ends
    assert (pulled, status) == (0, 408)
    assert "slower than 100 bytes/s" in body["detail"]


def test_a_body_that_keeps_up_with_the_minimum_rate_is_read_whole(call):
    app = make_app(1000, body_timeout=60, min_rate=100, grace=0.2)
    _, status, body = call(app, "/api/echo", [b"x" * 100] * 10, delay=0.05)  # 2,000 bytes/s
    assert (status, body) == (200, {"received": 1000})


def test_a_minimum_rate_of_zero_leaves_only_the_body_timeout(call):
    _, status, body = call(make_app(min_rate=0), "/api/echo", [b"x"] * 10, delay=0.05)
    assert (status, body) == (200, {"received": 10})


def _answer_and_close(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What the server answers within `seconds`, and whether it then closed the connection."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received, False
    except ConnectionResetError:
        pass
    return received, True


def _trickle_until_answered(sock: socket.socket, seconds: float) -> bytes:
    """Send a byte every 0.2 s until the server answers (or `seconds` pass): its first bytes."""
    sock.settimeout(0.2)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            sock.sendall(b"-")
            return sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    return b""


def _json_body(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_a_real_server_refuses_a_trickling_or_silent_upload_long_before_the_body_timeout(
    upload_server, real_cell_png
):
    """Against `python -m app`: 1 byte every 0.2 s, and a head followed by nothing, each get
    408 with a JSON reason and a closed connection within seconds (the body timeout is 60 s);
    a normal upload on the same server is answered."""
    base = upload_server.start(
        LEUKOLENS_UPLOAD_GRACE_SECONDS="0.5", LEUKOLENS_MIN_UPLOAD_BYTES_PER_SECOND="1000"
    )
    head = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    )
    trickling, silent = upload_server.connect(2)
    with trickling, silent:
        silent.sendall(head)
        # A well-formed start, then the file's bytes one at a time.
        trickling.sendall(
            head + b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        )
        answer = _trickle_until_answered(trickling, 10)
        rest, closed = _answer_and_close(trickling, 10)
        answer += rest
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert "slower than 1000 bytes/s" in _json_body(answer)["detail"]
        assert closed
        answer, closed = _answer_and_close(silent, 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert "slower than 1000 bytes/s" in _json_body(answer)["detail"]
        assert closed
    response = httpx.post(f"{base}/api/v1/predict", files={"file": ("cell.png", real_cell_png)})
    assert response.status_code == 200
