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


def test_an_unopenable_audit_path_stops_start_up_with_a_message_naming_it(tmp_path, model_store):
    """Issue 16: the server stopped with a raw traceback that did not name the path."""
    import os
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "audit.sqlite3"
    environment = {
        **os.environ,
        "LEUKOLENS_MODEL_STORE": str(model_store),
        "LEUKOLENS_AUDIT_LOG_PATH": str(path),
    }
    finished = subprocess.run(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", "0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode != 0
    assert f"cannot open the records at {path}" in finished.stderr


def test_with_a_sign_on_header_the_peer_address_is_not_rewritten(monkeypatch):
    """uvicorn's proxy headers would put X-Forwarded-For's address where the trusted-proxy
    check reads the peer's; with LEUKOLENS_REVIEWER_HEADER set they are off."""
    import sys

    import app.__main__ as entry
    from app.settings import Settings

    seen = {}
    monkeypatch.setattr(entry.uvicorn, "run", lambda *_, **options: seen.update(options))
    for header, rewritten in ((None, True), ("X-Forwarded-User", False)):
        seen.clear()
        settings = Settings(reviewer_header=header, trusted_proxies=["127.0.0.1"])
        monkeypatch.setattr(entry, "get_settings", lambda settings=settings: settings)
        monkeypatch.setattr(sys, "argv", ["python -m app"])
        entry.main()
        assert seen["proxy_headers"] is rewritten
