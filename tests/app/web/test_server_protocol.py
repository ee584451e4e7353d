"""Slow clients against a real `python -m app` (uvicorn) process on loopback."""

import socket
import time

import httpx


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_request_head_that_never_ends_is_cut_off(start_server, model_store):
    """Issue 16: connections sending headers for 60 s were never closed (slowloris)."""
    base = start_server(
        LEUKOLENS_MODEL_STORE=str(model_store), LEUKOLENS_HEADER_TIMEOUT_SECONDS="1"
    )
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as silent:
        assert _closed_within(silent, 10)
    with socket.create_connection(("127.0.0.1", port)) as trickling:
        trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 10 and not closed:
            try:
                trickling.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            closed = _closed_within(trickling, 0.3)
        assert closed
    assert httpx.get(f"{base}/healthz").status_code == 200  # normal requests unaffected


def test_a_body_that_trickles_is_answered_408(start_server, model_store):
    base = start_server(LEUKOLENS_MODEL_STORE=str(model_store), LEUKOLENS_BODY_TIMEOUT_SECONDS="1")
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
        )
        sock.settimeout(10)
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 408")
