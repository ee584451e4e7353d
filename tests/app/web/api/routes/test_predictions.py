import csv
import io
import json

import numpy as np
import pytest


def test_predict_a_real_cell(client, real_cell_png):
    response = client.post(
        "/api/v1/predict", files={"file": ("cell.png", real_cell_png, "image/png")}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["label"] in {"ALL", "HEM"}
    assert 0.0 <= body["probability_all"] <= 1.0
    assert body["label"] == ("ALL" if body["probability_all"] >= body["threshold"] else "HEM")
    assert body["model"] == {"id": "brightness", "version": "1"}
    near_threshold = abs(body["probability_all"] - body["threshold"]) < 0.1
    assert [w["code"] for w in body["warnings"]] == (["uncertain"] if near_threshold else [])
    assert set(body["timings_ms"]) == {"decode", "preprocess", "inference", "total"}
    assert body["timings_ms"]["total"] >= body["timings_ms"]["decode"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["views"] is None


def test_the_probability_is_the_models_output(client, encode_png):
    """The brightness test model's logit is 4 x (mean input - 0.1): check the served number."""
    from app.core.classifier import OnnxCellClassifier

    rgb = np.zeros((120, 120, 3), np.uint8)
    rgb[30:90, 30:90] = 180
    response = client.post("/api/v1/predict", files={"file": ("x.png", encode_png(rgb))})
    classifier = OnnxCellClassifier(client.app.state.settings.model_store / "brightness")
    expected = float(classifier.predict_images([rgb]).probabilities[0])
    assert response.json()["probability_all"] == pytest.approx(expected, abs=1e-6)


def test_a_model_is_chosen_by_id(client, real_cell_png):
    response = client.post(
        "/api/v1/predict?model=brightness-64", files={"file": ("c.png", real_cell_png)}
    )
    assert response.status_code == 200
    assert response.json()["model"]["id"] == "brightness-64"


def test_views_are_png_data_uris(client, real_cell_png):
    response = client.post("/api/v1/predict?views=true", files={"file": ("c.png", real_cell_png)})
    views = response.json()["views"]
    assert set(views) == {"original", "enhanced", "cropped"}
    assert all(uri.startswith("data:image/png;base64,") for uri in views.values())


@pytest.mark.parametrize(
    ("files", "query", "status", "fragment"),
    [
        ({"file": ("a.png", b"", "image/png")}, "", 400, "empty"),
        ({"file": ("a.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")}, "", 400, "not a readable"),
        ({"file": ("a.txt", b"hello there", "text/plain")}, "", 415, "unsupported type"),
        ({"file": ("a.gif", b"GIF89a-not-really", "image/gif")}, "", 415, "image/gif"),
        ({"image": ("a.png", b"x", "image/png")}, "", 422, "file"),
        ({"file": ("a.png", b"x", "image/png")}, "?model=nope", 422, "unknown model"),
        ({"file": ("a.png", b"x", "image/png")}, "?views=maybe", 422, "bool"),
    ],
)
def test_bad_input_gets_a_json_4xx(client, files, query, status, fragment):
    response = client.post(f"/api/v1/predict{query}", files=files)
    assert response.status_code == status
    assert fragment.lower() in json.dumps(response.json()["detail"]).lower()
    assert client.get("/healthz").status_code == 200


def test_a_bad_model_parameter_is_422_before_the_queue_is_asked(client, real_cell_png, monkeypatch):
    """The service looks the model up before admission: a full server still says 422 to a
    request it could never answer, on both routes; a good request gets the 503."""
    in_flight = client.app.state.in_flight
    edge = client.app.middleware_stack
    while type(edge).__name__ != "InFlightLimitMiddleware":
        edge = edge.app
    # The places fill while the bodies arrive: past the edge's early look, the service's
    # admission itself is full.
    monkeypatch.setattr(type(edge), "__call__", lambda self, *args: self.app(*args))
    in_flight.count = in_flight.limit
    try:
        single = client.post("/api/v1/predict?model=nope", files={"file": ("c.png", real_cell_png)})
        batch = client.post(
            "/api/v1/predict/batch?model=nope", files=[("files", ("c.png", real_cell_png))]
        )
        busy = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    finally:
        in_flight.count = 0
    assert (single.status_code, batch.status_code, busy.status_code) == (422, 422, 503)
    assert "unknown model 'nope'" in single.json()["detail"]
    assert batch.json() == single.json()


def test_too_many_pixels_is_refused_from_the_header(client, encode_png):
    import cv2

    # 8000 x 7000 black PNG compresses to a small file that claims 56 megapixels.
    big = np.zeros((7000, 8000), np.uint8)
    ok, data = cv2.imencode(".png", big, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    assert len(data) < 1_000_000
    response = client.post("/api/v1/predict", files={"file": ("big.png", data.tobytes())})
    assert response.status_code == 413
    assert "pixels" in response.json()["detail"]


def test_too_many_bytes_is_refused(settings, real_cell_png):
    from fastapi.testclient import TestClient

    from app.main import create_app

    small = settings.model_copy(update={"max_upload_bytes": 10_000})
    with TestClient(create_app(small)) as client:
        response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_batch_keeps_order_and_isolates_bad_files(client, cnmc_root):
    files = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:2]
    payload = [
        ("files", (files[0].name, files[0].read_bytes(), "image/png")),
        ("files", ("broken.png", b"garbage", "image/png")),
        ("files", (files[1].name, files[1].read_bytes(), "image/png")),
    ]
    response = client.post("/api/v1/predict/batch", files=payload)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [files[0].name, "broken.png", files[1].name]
    assert [r["status"] for r in results] == ["ok", "error", "ok"]
    assert results[1]["error"]["status_code"] == 400
    assert results[1]["prediction"] is None
    assert 0 <= results[2]["prediction"]["probability_all"] <= 1


def test_batch_as_csv(client, real_cell_png):
    payload = [
        ("files", ("=cmd|x.png", real_cell_png, "image/png")),
        ("files", ("b.png", b"", "image/png")),
    ]
    response = client.post("/api/v1/predict/batch?format=csv", files=payload)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["status"] for row in rows] == ["ok", "error"]
    assert rows[0]["filename"] == "'=cmd|x.png"  # a spreadsheet must not run it as a formula
    assert float(rows[0]["probability_all"]) >= 0
    assert rows[1]["error"].startswith("400")


def test_batch_over_the_limit_is_refused(client, real_cell_png):
    payload = [("files", (f"{i}.png", real_cell_png, "image/png")) for i in range(5)]
    response = client.post("/api/v1/predict/batch", files=payload)
    assert response.status_code == 413
    assert "at most 4" in response.json()["detail"]


def test_every_prediction_says_whether_it_is_assessable(client, real_cell_png, encode_png):
    white = np.full((64, 64, 3), 200, np.uint8)  # no black surround: an unsegmented image
    batch = client.post(
        "/api/v1/predict/batch?format=csv",
        files=[("files", ("cell.png", real_cell_png)), ("files", ("white.png", encode_png(white)))],
    )
    rows = list(csv.DictReader(io.StringIO(batch.text)))
    assert [row["assessable"] for row in rows] == ["true", "false"]
    assert rows[1]["state"] == "not_assessable"
    single = client.post("/api/v1/predict", files={"file": ("w.png", encode_png(white))}).json()
    assert single["assessable"] is False
    assert "no_background" in [w["code"] for w in single["warnings"]]


def test_warning_codes_are_an_enum_in_the_openapi_schema(client):
    from app.core.quality_checks import WarningCode

    schema = client.get("/openapi.json").json()["components"]["schemas"]
    code = schema["QualityWarning"]["properties"]["code"]
    assert code["$ref"] == "#/components/schemas/WarningCode"  # named, so clients can generate it
    codes = schema["WarningCode"]["enum"]
    assert codes == [c.value for c in WarningCode]
    assert {"no_cell", "no_background", "multiple_objects", "uncertain"} <= set(codes)
    assert "assessable" in schema["Prediction"]["properties"]


def test_a_request_over_its_time_budget_is_stopped_between_steps(
    settings, real_cell_png, monkeypatch
):
    """Decoding and preprocessing once had no time limit (37 s for one small file)."""
    import time

    from fastapi.testclient import TestClient

    from app.inference import prediction_path
    from app.main import create_app

    real_decode = prediction_path.decode_image

    def slow_decode(data):
        time.sleep(0.5)
        return real_decode(data)

    monkeypatch.setattr(prediction_path, "decode_image", slow_decode)
    tight = settings.model_copy(update={"processing_budget_seconds": 0.2})
    with TestClient(create_app(tight)) as client:
        response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png)})
    assert response.status_code == 413
    assert "decoding took longer than the 0.2 s budget" in response.json()["detail"]


def test_each_file_of_a_batch_gets_the_per_file_budget_not_a_multiple(
    settings, real_cell_png, monkeypatch
):
    """The budget restarts per file at the setting, never at the setting times the files."""
    import time

    from fastapi.testclient import TestClient

    from app.inference import prediction_path
    from app.main import create_app

    seen: list[float] = []
    real_decode = prediction_path.decode

    def decode_noting_the_budget(data, header, budget, decoders):
        seen.append(round(budget.deadline - time.monotonic(), 1))
        return real_decode(data, header, budget, decoders)

    monkeypatch.setattr(prediction_path, "decode", decode_noting_the_budget)
    chosen = settings.model_copy(update={"processing_budget_seconds": 3.0})
    with TestClient(create_app(chosen)) as client:
        files = [("files", (f"{n}.png", real_cell_png)) for n in range(4)]
        assert client.post("/api/v1/predict/batch", files=files).status_code == 200
    assert len(seen) == 4
    assert all(left <= 3.0 for left in seen), seen


def test_work_stops_when_the_client_has_gone(client, real_cell_png, monkeypatch):
    """Two dropped requests once kept the workers busy for the next client. The decode
    below waits until the server has noticed the disconnect; preprocessing never starts."""
    import threading

    import anyio
    import httpx

    from app.core.domain.outcomes import RefusalKind, RefusedError
    from app.inference import prediction_path
    from app.inference.budget import WorkBudget
    from tests.conftest import asgi_scope

    noticed = threading.Event()
    preprocessed = []
    real_decode = prediction_path.decode

    def decode_until_noticed(data, header, budget, decoders):
        for _ in range(200):
            if budget.is_client_gone:
                noticed.set()
                break
            threading.Event().wait(0.02)
        return real_decode(data, header, budget, decoders)

    real_check = WorkBudget.check
    stopped_at = []

    def recording_check(budget, step):
        try:
            real_check(budget, step)
        except RefusedError as refused:
            if refused.kind is RefusalKind.CLIENT_GONE:
                stopped_at.append(step)
            raise

    monkeypatch.setattr(WorkBudget, "check", recording_check)
    monkeypatch.setattr(prediction_path, "decode", decode_until_noticed)
    monkeypatch.setattr(
        prediction_path,
        "run_recipe",
        lambda *args, **kwargs: (
            preprocessed.append(1) or pytest.fail("preprocessed for a gone client")
        ),
    )
    upload = httpx.Request(
        "POST", "http://test/api/v1/predict", files={"file": ("c.png", real_cell_png)}
    )
    body = upload.read()
    scope = asgi_scope("/api/v1/predict", upload.headers.items(), server=("test", 80))
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}  # the client hangs up once its upload is sent

    async def send(message):
        sent.append(message)

    async def call():
        with anyio.fail_after(20):
            await client.app(scope, receive, send)

    client.portal.call(call)
    assert noticed.wait(5)
    for _ in range(500):  # the worker finishes its step, then stops at the next check
        if stopped_at:
            break
        threading.Event().wait(0.02)
    assert stopped_at == ["decoding"]
    assert preprocessed == []
    service = client.app.state.service
    service.records.flush(timeout=10)
    assert service.records.rows() == []
    assert sent[0]["status"] == 499


def audit_outcomes(database) -> dict[str, set[str]]:
    """request id -> the outcomes its audit rows say."""
    import sqlite3

    with sqlite3.connect(database) as reader:
        rows = reader.execute("SELECT request_id, outcome FROM predictions").fetchall()
    found: dict[str, set[str]] = {}
    for request_id, outcome in rows:
        found.setdefault(request_id, set()).add(outcome)
    return found


def test_a_request_answered_503_leaves_no_row_claiming_an_answer(
    model_store, tmp_path, real_cell_png
):
    """On a locked database there were once 5 audit rows for 3 answered requests. The sample
    record could not be written, the request got 503 ("nothing was recorded"), yet its audit
    row, kept first, said it was answered."""
    import sqlite3

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    database = tmp_path / "records.sqlite3"
    settings = Settings(
        model_store=model_store, audit_log_path=database, audit_busy_timeout_seconds=0.2
    )
    statuses: dict[str, int] = {}
    with TestClient(create_app(settings)) as client:

        def predict(path: str, field: str) -> None:
            answer = client.post(path, files=[(field, ("c.png", real_cell_png))])
            statuses[answer.headers["x-request-id"]] = answer.status_code

        predict("/api/v1/predict?sample_id=LOCK-1", "file")
        holder = sqlite3.connect(database, timeout=0.1)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
        try:
            predict("/api/v1/predict?sample_id=LOCK-1", "file")
            predict("/api/v1/predict/batch?sample_id=LOCK-1", "files")
            predict("/api/v1/predict", "file")  # no sample: answered from the journal
        finally:
            holder.rollback()
            holder.close()
        client.app.state.service.records.flush(30)
    outcomes = audit_outcomes(database)
    assert sorted(statuses.values()) == [200, 200, 503, 503]
    for request_id, status in statuses.items():
        expected = {"answered"} if status == 200 else {"not_answered"}
        assert outcomes[request_id] == expected, (status, outcomes[request_id])


def test_after_a_full_disk_and_a_restart_the_refused_requests_are_not_answered(
    settings, real_cell_png
):
    """After a full-disk restart there were once 12 rows for requests answered 503
    ("nothing was answered"): rows given up on came back from the journal as answers."""
    import errno
    import os

    from fastapi.testclient import TestClient
    from sqlalchemy.exc import OperationalError

    from app.main import create_app

    def full_disk(_: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def database_full(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    refused = []
    with TestClient(create_app(settings)) as client:
        audit = client.app.state.service.records
        original_fsync, original_insert = os.fsync, audit._insert
        os.fsync, audit._insert = full_disk, database_full
        try:
            for path, field, count in [
                ("/api/v1/predict", "file", 1),
                ("/api/v1/predict/batch", "files", 2),
            ]:
                answer = client.post(path, files=[(field, ("c.png", real_cell_png))] * count)
                assert answer.status_code == 503
                refused.append(answer.headers["x-request-id"])
            audit.flush(30)  # the marks were given up on as well, behind the rows
        finally:
            os.fsync, audit._insert = original_fsync, original_insert
    with TestClient(create_app(settings)):  # the restart replays what the journal kept
        pass
    outcomes = audit_outcomes(settings.audit_log_path)
    for request_id in refused:
        assert outcomes.get(request_id, {"not_answered"}) == {"not_answered"}
