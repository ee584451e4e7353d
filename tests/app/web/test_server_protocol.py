"""Slow clients against a real `python -m app` (uvicorn) process on loopback."""

import socket
import time

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.web import server_protocol
from app.web.server_protocol import header_timeout_protocol, resolve_http

IMPLEMENTATIONS = pytest.mark.parametrize("implementation", ["httptools", "h11"])


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _trickled_head_closed_within(sock: socket.socket, seconds: float) -> bool:
    """Send a request head one header line at a time until the server closes the connection."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except OSError:
            return True
        if _closed_within(sock, 0.3):
            return True
    return False


def _serve(start_server, model_store, implementation: str, **settings: str) -> int:
    """A real server on this HTTP parser, on loopback; its port."""
    base = start_server(
        LEUKOLENS_MODEL_STORE=str(model_store),
        LEUKOLENS_HTTP_IMPLEMENTATION=implementation,
        **settings,
    )
    return int(base.rsplit(":", 1)[1])


@IMPLEMENTATIONS
def test_a_request_head_that_never_ends_is_cut_off(start_server, model_store, implementation):
    """Connections sending headers for 60 s used to stay open for ever (slowloris)."""
    port = _serve(start_server, model_store, implementation, LEUKOLENS_HEADER_TIMEOUT_SECONDS="1")
    with socket.create_connection(("127.0.0.1", port)) as silent:
        assert _closed_within(silent, 10)
    with socket.create_connection(("127.0.0.1", port)) as trickling:
        assert _trickled_head_closed_within(trickling, 10)
    # Normal requests unaffected.
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


@IMPLEMENTATIONS
def test_a_body_that_trickles_is_answered_408(start_server, model_store, implementation):
    port = _serve(start_server, model_store, implementation, LEUKOLENS_BODY_TIMEOUT_SECONDS="1")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
        )
        sock.settimeout(10)
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 408")


def _predict_request(png: bytes) -> tuple[bytes, bytes]:
    """The head and the multipart body of a prediction request for one image."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="cell.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--b--\r\n"
    )
    head = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head, body


def _read_until(sock: socket.socket, ending: bytes, count: int, seconds: float) -> bytes:
    """What arrives until `ending` has arrived `count` times (a head and its body may come
    in separate reads)."""
    sock.settimeout(seconds)
    received = b""
    while received.count(ending) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


@IMPLEMENTATIONS
def test_a_kept_alive_connection_lives_while_it_sends_whole_heads(
    start_server, model_store, implementation
):
    """The deadline is per head: pipelined requests and a connection that comes back within
    the deadline, again and again for longer than it, are all answered."""
    port = _serve(start_server, model_store, implementation, LEUKOLENS_HEADER_TIMEOUT_SECONDS="2")
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b'{"status":"ok"}'
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request * 3)
        assert _read_until(sock, body, 3, 10).count(b"HTTP/1.1 200 OK") == 3
        for _ in range(3):  # 3.6 s in all, past the 2 s deadline
            time.sleep(1.2)
            sock.sendall(request)
            assert _read_until(sock, body, 1, 10).startswith(b"HTTP/1.1 200 OK")
        assert _closed_within(sock, 10)  # idle after its last answer: closed


@IMPLEMENTATIONS
def test_a_head_trickled_after_an_answer_is_cut_off_too(start_server, model_store, implementation):
    """The deadline starts again after each answer; uvicorn's own keep-alive timer (5 s) stops
    at the first byte of the next head, so only the deadline closes this within 4 s."""
    port = _serve(start_server, model_store, implementation, LEUKOLENS_HEADER_TIMEOUT_SECONDS="1")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_until(sock, b'{"status":"ok"}', 1, 10).startswith(b"HTTP/1.1 200 OK")
        assert _trickled_head_closed_within(sock, 4)


@IMPLEMENTATIONS
def test_a_pipelined_request_slower_than_the_deadline_is_answered(
    start_server, model_store, real_cell_png, implementation
):
    """A request whose head came pipelined behind another is not under the head deadline
    while its body arrives, even past the deadline."""
    port = _serve(start_server, model_store, implementation, LEUKOLENS_HEADER_TIMEOUT_SECONDS="1")
    head, body = _predict_request(real_cell_png)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + head + body[:100])
        time.sleep(1.8)
        sock.sendall(body[100:])
        answers = _read_until(sock, b"HTTP/1.1 ", 2, 20)
    assert answers.startswith(b"HTTP/1.1 200 OK")
    assert answers.split(b"HTTP/1.1 ")[2].startswith(b"200")


def test_the_default_parser_is_httptools_where_installed_else_h11(monkeypatch):
    assert resolve_http("auto") == "httptools"
    assert issubclass(header_timeout_protocol(3.0), HttpToolsProtocol)
    assert header_timeout_protocol(3.0).header_timeout_seconds == 3.0
    assert issubclass(header_timeout_protocol(3.0, "h11"), H11Protocol)
    monkeypatch.setattr(server_protocol, "installed", lambda module: module != "httptools")
    assert resolve_http("auto") == "h11"
    assert issubclass(header_timeout_protocol(3.0), H11Protocol)


@IMPLEMENTATIONS
def test_the_head_deadline_does_not_cut_a_body_that_takes_longer(
    start_server, model_store, real_cell_png, implementation
):
    """Once the head is complete, its body is the body timeout's business (default 60 s)."""
    port = _serve(start_server, model_store, implementation, LEUKOLENS_HEADER_TIMEOUT_SECONDS="1")
    head, body = _predict_request(real_cell_png)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body[:100])
        time.sleep(1.8)
        sock.sendall(body[100:])
        assert _read_until(sock, b"HTTP/1.1", 1, 20).startswith(b"HTTP/1.1 200")
