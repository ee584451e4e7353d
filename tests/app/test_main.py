from fastapi.testclient import TestClient

from app.main import create_app


def test_a_body_over_the_limit_is_413_before_the_route_reads_it(settings, real_cell_png):
    tight = settings.model_copy(update={"max_upload_bytes": 1000, "max_batch_files": 1})
    with TestClient(create_app(tight)) as client:
        oversized = real_cell_png * 40  # about 1.6 MB against a 1 MB + 1000 B body limit
        response = client.post("/api/v1/predict", files={"file": ("c.png", oversized)})
        assert response.status_code == 413
        assert "detail" in response.json()
        assert client.get("/healthz").status_code == 200


def test_a_streamed_body_over_the_limit_is_413(settings):
    tight = settings.model_copy(update={"max_upload_bytes": 1000, "max_batch_files": 1})

    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    with TestClient(create_app(tight)) as client:
        response = client.post(
            "/api/v1/predict",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        )
    assert response.status_code == 413


def test_uploads_are_kept_in_memory(client, settings):
    from starlette.formparsers import MultiPartParser

    assert MultiPartParser.spool_max_size >= settings.max_upload_bytes


def test_a_single_image_request_gets_one_files_limit_not_the_batchs(settings):
    """/predict once accepted a body as large as a whole batch (64 x 20 MB)."""
    from app.main import BATCH_PATH, PREDICT_PATH, body_limits

    roomy = settings.model_copy(update={"max_upload_bytes": 100_000, "max_batch_files": 4})
    limits = body_limits(roomy)
    assert limits[PREDICT_PATH] < 2 * roomy.max_upload_bytes < limits[BATCH_PATH]
    three_files = b"x" * 300_000

    def chunks():
        for start in range(0, len(three_files), 65536):
            yield three_files[start : start + 65536]

    with TestClient(create_app(roomy)) as client:
        multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
        declared = client.post("/api/v1/predict", content=three_files, headers=multipart)
        streamed = client.post("/api/v1/predict", content=chunks(), headers=multipart)
        batch = client.post("/api/v1/predict/batch", content=three_files, headers=multipart)
    assert declared.status_code == streamed.status_code == 413
    assert f"exceeds {limits[PREDICT_PATH]} bytes" in declared.json()["detail"]
    assert batch.status_code != 413  # within the batch's limit: parsed, then refused as junk


def test_sample_records_older_than_their_retention_are_pruned_at_start(settings, real_cell_png):
    """LEUKOLENS_RETENTION_DAYS reaches the records (the audit's rows with them)."""
    import sqlite3
    import time

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.records.review_records import ReviewRecords

    ReviewRecords(settings.audit_log_path).close()
    connection = sqlite3.connect(settings.audit_log_path)
    connection.execute(
        "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, model_id, "
        "model_version, probability_all, label, state, assessable) "
        "VALUES (?, 'OLD-1', 'r', ?, 'm', '1', 0.9, 'ALL', 'suggests_all', 1)",
        (time.time() - 100 * 86_400, "a" * 64),
    )
    connection.commit()
    connection.close()
    with TestClient(create_app(settings)) as client:  # the default: a year
        assert client.get("/api/v1/samples/OLD-1").status_code == 200
    shorter = settings.model_copy(update={"retention_days": 90})
    with TestClient(create_app(shorter)) as client:
        assert client.get("/api/v1/samples/OLD-1").status_code == 404


def test_a_batch_body_holds_a_few_files_at_the_limit_not_the_file_count_times_it(settings):
    """64 files x 20 MB once let one batch body reach 1.34 GB."""
    from app.main import BATCH_PATH, body_limits
    from app.settings import BATCH_BODY_FILES_AT_LIMIT

    defaults = body_limits(settings)[BATCH_PATH]
    assert defaults < settings.max_upload_bytes * (BATCH_BODY_FILES_AT_LIMIT + 1)
    assert defaults < 100 * 1024 * 1024
    assert defaults > 64 * 450 * 450 * 3  # 64 C-NMC cells as BMP still fit
    chosen = settings.model_copy(update={"max_batch_bytes": 5_000_000})
    assert 5_000_000 <= body_limits(chosen)[BATCH_PATH] < 5_100_000


def test_the_api_says_the_release_it_is(settings):
    """OpenAPI's info.version is pyproject.toml's version (it said 0.1.0 whatever the release),
    read from the installed package: checked where .venv holds this checkout's install."""
    import json
    import tomllib
    from importlib import metadata
    from pathlib import Path

    import pytest

    root = Path(__file__).parents[2]
    installed = json.loads(metadata.distribution("leukolens").read_text("direct_url.json") or "{}")
    if installed.get("url") != root.as_uri():
        pytest.skip(f"the installed leukolens is {installed.get('url')}, not this checkout")
    pyproject = root / "pyproject.toml"
    released = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    assert create_app(settings).openapi()["info"]["version"] == released


def test_a_deprecated_retention_setting_still_works_and_start_up_says_so(settings, caplog):
    import logging

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    both = {"records_retention_days": 90, "audit_retention_days": 90}
    old = Settings(**{**settings.model_dump(exclude_unset=True), **both})
    assert old.retention_days == 90
    with caplog.at_level(logging.WARNING), TestClient(create_app(old)) as client:
        assert client.app.state.review_records.retention_days == 90
    assert any(
        "LEUKOLENS_RECORDS_RETENTION_DAYS is deprecated" in record.getMessage()
        for record in caplog.records
    )
