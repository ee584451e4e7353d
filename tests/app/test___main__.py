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
    """The server once stopped with a raw traceback that did not name the path."""
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


def test_the_first_lines_say_which_model_answers_and_where_the_records_go(
    start_server, model_store
):
    import json

    base = start_server(LEUKOLENS_MODEL_STORE=str(model_store))
    port = base.rsplit(":", 1)[1]
    log = (start_server.audit_dir / f"server-{port}.log").read_text().splitlines()
    said = [json.loads(line)["message"] for line in log if '"leukolens.start"' in line]
    assert said[0] == (
        "serving model brightness version 1 by default (others by ?model=: brightness-64) "
        f"from {model_store}"
    )
    audit = start_server.audit_dir / "audit.sqlite3"
    assert said[1] == (
        f"records (audit, samples and decisions) go to {audit}, journal "
        f"{audit.with_suffix('.journal')}"
    )
    # Before uvicorn says where it listens: the lines a person sees first.
    assert log.index(next(line for line in log if "Uvicorn running on" in line)) > max(
        index for index, line in enumerate(log) if '"leukolens.start"' in line
    )


def test_a_database_password_is_never_said(monkeypatch, caplog):
    from app.core.model_registry import ModelRegistry
    from app.main import announce_start
    from app.settings import Settings

    settings = Settings(database_url="postgresql+psycopg://app:s3cret@db.lab/leukolens")

    class Manifest:
        id, version = "m", "2"

    class Model:
        manifest = Manifest()

    with caplog.at_level("INFO", logger="leukolens.start"):
        announce_start(settings, ModelRegistry(models={"m": Model()}, default_id="m"))
    assert "s3cret" not in caplog.text
    assert "postgresql+psycopg://app:***@db.lab/leukolens" in caplog.text


def test_help_describes_every_option_and_names_every_setting(capsys, monkeypatch):
    import pytest

    import app.__main__ as entry
    from app.settings import Settings

    parser = entry.build_parser(Settings())
    assert parser.prog == "./scripts/serve"
    for action in parser._actions:
        assert action.help, action.option_strings
    monkeypatch.setattr("sys.argv", ["./scripts/serve", "--help"])
    with pytest.raises(SystemExit):
        entry.main()
    shown = capsys.readouterr().out
    for name in Settings.model_fields:
        assert f"LEUKOLENS_{name.upper()}" in shown
    # The main settings with their descriptions, read from Settings.
    assert "Header in which the lab's single sign-on proxy names the signed-in user" in " ".join(
        shown.split()
    )
