"""Run plainly as `uvicorn app.main:app`, a client on 127.0.0.1 sending
`X-Forwarded-For: 127.0.0.2` was taken for a trusted sign-on proxy at 127.0.0.2, and its
`X-Forwarded-User: mallory` was recorded. However the app is started now, X-Forwarded-For and
Forwarded never make a peer a trusted proxy: under a server that rewrites the peer from them
the app refuses to start, and `python -m app` judges the socket's own peer."""

import os
import socket
import subprocess
import sys

import httpx
import pytest

HEADER = "X-Forwarded-User"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sign_on_environment(model_store, tmp_path, proxies: str) -> dict[str, str]:
    return {
        **os.environ,
        "LEUKOLENS_MODEL_STORE": str(model_store),
        "LEUKOLENS_AUDIT_LOG_PATH": str(tmp_path / "audit.sqlite3"),
        "LEUKOLENS_REVIEWER_HEADER": HEADER,
        "LEUKOLENS_TRUSTED_PROXIES": proxies,
    }


def test_plain_uvicorn_with_its_proxy_headers_refuses_to_start(model_store, tmp_path):
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
        env=sign_on_environment(model_store, tmp_path, '["127.0.0.2"]'),
        capture_output=True,
        text=True,
        timeout=60,  # it refuses within seconds; the earlier code served on, for ever
    )
    assert done.returncode != 0
    assert "rewrites a client's address from X-Forwarded-For" in done.stdout + done.stderr


def scored_and_decided(base: str, headers: dict[str, str], png: bytes) -> httpx.Response:
    scored = httpx.post(
        f"{base}/api/v1/predict?sample_id=XFF-1", files={"file": ("c.png", png)}, timeout=30
    ).json()
    body = {
        "request_id": scored["request_id"],
        "image_sha256": scored["image_sha256"],
        "sample_id": "XFF-1",
        "decision": "ALL",
    }
    return httpx.post(f"{base}/api/v1/reviews", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    "forged",
    [
        {"X-Forwarded-For": "127.0.0.2"},
        {"X-Forwarded-For": "127.0.0.2:4444"},
        {"Forwarded": "for=127.0.0.2"},
        {"X-Real-IP": "127.0.0.2"},
    ],
)
def test_python_m_app_never_takes_a_forwarded_address_for_the_proxy(
    serve_in_session, model_store, tmp_path, real_cell_png, forged
):
    port = free_port()
    command = [sys.executable, "-m", "app", "--port", str(port)]
    environment = sign_on_environment(model_store, tmp_path, '["127.0.0.2"]')
    with serve_in_session(command, port, 60, "python -m app", env=environment) as base:
        refused = scored_and_decided(base, {HEADER: "mallory", **forged}, real_cell_png)
        assert refused.status_code == 403
        assert "LEUKOLENS_TRUSTED_PROXIES" in refused.json()["detail"]
        sample = httpx.get(f"{base}/api/v1/samples/XFF-1", timeout=30).json()
        assert sample["decisions"] == []


def test_uvicorn_without_proxy_headers_serves_the_real_proxy(
    serve_in_session, model_store, tmp_path, real_cell_png
):
    """The proxy at its own address is believed, whatever X-Forwarded-For it adds."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--port",
        str(port),
        "--no-proxy-headers",
    ]
    environment = sign_on_environment(model_store, tmp_path, '["127.0.0.1"]')
    with serve_in_session(command, port, 60, "uvicorn", env=environment) as base:
        headers = {HEADER: "jdoe", "X-Forwarded-For": "192.0.2.7"}
        stored = scored_and_decided(base, headers, real_cell_png)
        assert stored.status_code == 201
        assert (stored.json()["reviewer"], stored.json()["reviewer_source"]) == (
            "jdoe",
            "sso_header",
        )
