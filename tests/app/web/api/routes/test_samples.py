import hashlib

import numpy as np
import pytest

from app.core.manifest import Evaluation, load_manifest, write_manifest
from app.core.model_registry import record_model
from tests.conftest import review_json, write_mean_brightness_model

# Sensitivity 0.80 (800 of 1000), specificity 0.75 (750 of 1000), at the served threshold 0.5.
OUT_OF_FOLD = Evaluation(
    protocol="out-of-fold predictions of a test cross-validation, calibrated, at the served "
    "threshold",
    metrics={"n": 2000, "threshold": 0.5, "confusion_matrix": [[750, 250], [200, 800]]},
)


@pytest.fixture
def model_store(tmp_path):
    """The test store, its default model's card holding an out-of-fold evaluation."""
    store = tmp_path / "store"
    model_dir = write_mean_brightness_model(store / "brightness")
    manifest = load_manifest(model_dir)
    write_manifest(manifest.model_copy(update={"evaluations": [OUT_OF_FOLD]}), model_dir)
    record_model(store, model_dir, default=True)
    return store


def test_a_sample_lists_its_images_and_counts(client, real_cell_png, encode_png):
    blank = encode_png(np.zeros((64, 64, 3), np.uint8))  # no cell: not assessable
    response = client.post(
        "/api/v1/predict/batch?sample_id=LAB-42",
        files=[("files", ("a.png", real_cell_png)), ("files", ("b.png", blank))],
    )
    results = response.json()["results"]
    assert results[1]["prediction"]["assessable"] is False
    assert results[1]["prediction"]["state"] == "not_assessable"
    single = client.post(
        "/api/v1/predict?sample_id=LAB-42", files={"file": ("c.png", real_cell_png)}
    ).json()
    client.post("/api/v1/predict/batch", files=[("files", ("d.png", real_cell_png))])  # no sample
    sample = client.get("/api/v1/samples/LAB-42").json()
    assert sample["sample_id"] == "LAB-42"
    # the same cell again is a repeat of the first: one cell of the sample
    assert [p["image_sha256"] for p in sample["predictions"]] == [
        hashlib.sha256(real_cell_png).hexdigest(),
        hashlib.sha256(blank).hexdigest(),
    ]
    assert single["repeat_of"] == results[0]["prediction"]["request_id"]
    counts = sample["counts"]
    assert counts["images"] == 2
    assert counts["by_state"]["not_assessable"] == 1
    assert sum(counts["by_state"].values()) == 2
    assert counts["decided"] == 0
    assessable_all = sum(1 for p in sample["predictions"] if p["state"] == "suggests_all")
    assert counts["model_suggested_all_like_share"] == assessable_all / 1
    assert "all_like_share_of_assessable" not in counts  # named for what it is now
    assert sample["status"] == "preliminary"
    assert sample["headline"]["share"] is None  # nothing reviewed yet
    assert sample["headline"]["text"] == "no assessable reviewed cell yet"
    assert "filename" not in str(sample)


def test_an_unknown_sample_is_404(client):
    response = client.get("/api/v1/samples/never-seen")
    assert response.status_code == 404
    assert "never-seen" in response.json()["detail"]


def test_a_bad_sample_id_is_422(client, real_cell_png):
    response = client.post(
        "/api/v1/predict?sample_id=%20x", files={"file": ("c.png", real_cell_png)}
    )
    assert response.status_code == 422


NAME_WITH_DATE = "Jane.Doe.1962-03-14"


@pytest.mark.parametrize("path", ["/api/v1/predict", "/api/v1/predict/batch"])
def test_a_name_with_a_birth_date_is_no_sample_id(client, real_cell_png, path):
    """Such ids were once accepted and kept for ever; now refused with the reason."""
    field = "file" if path.endswith("predict") else "files"
    response = client.post(
        f"{path}?sample_id={NAME_WITH_DATE}", files=[(field, ("c.png", real_cell_png))]
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "sample_id"]
    assert "lab numbers only, never a patient's name or birth date" in error["msg"]
    assert client.get("/api/v1/samples").json()["total"] == 0


@pytest.mark.parametrize(
    "sample_id",
    [
        "JANEDOE19620314",
        "janedoe-1962-03-14",
        "Jane.Doe.1962-3-14",
        "Jane-Doe-62-03-14",
        "jane.doe.3.14.1962",
        "Jane.Doe.14Mar1962",
    ],
)
def test_the_birth_date_spellings_that_were_answered_200_are_refused(
    client, real_cell_png, sample_id
):
    """Each of these used to be recorded; the refusal names the rule and a lab number."""
    response = client.post(
        f"/api/v1/predict?sample_id={sample_id}", files={"file": ("c.png", real_cell_png)}
    )
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "no name beside a date" in message
    assert "S24-12345" in message
    assert client.get("/api/v1/samples").json()["total"] == 0


def test_a_name_without_a_date_is_answered_with_a_warning(client, real_cell_png):
    answer = client.post(
        "/api/v1/predict?sample_id=SMITH_JOHN_MRN4471234",
        files={"file": ("c.png", real_cell_png)},
    )
    assert answer.status_code == 200
    assert "could be a person's name" in answer.json()["sample_id_warning"]
    lab = client.post(
        "/api/v1/predict/batch?sample_id=HEM-LAB-2024-001",
        files=[("files", ("c.png", real_cell_png))],
    )
    assert lab.json()["results"][0]["prediction"]["sample_id_warning"] is None


def test_the_sample_paths_refuse_a_name_with_a_birth_date(client):
    for response in (
        client.get(f"/api/v1/samples/{NAME_WITH_DATE}"),
        client.post(
            f"/api/v1/samples/{NAME_WITH_DATE}/withdrawals", json={"client_request_id": "u-1"}
        ),
    ):
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "sample_id"]


def test_a_lab_number_holding_a_date_stays_accepted(client, real_cell_png):
    for sample_id in ("LAB-2026-12-07-3", "S26-12345"):
        response = client.post(
            f"/api/v1/predict?sample_id={sample_id}", files={"file": ("c.png", real_cell_png)}
        )
        assert response.status_code == 200
        assert client.get(f"/api/v1/samples/{sample_id}").status_code == 200


def test_the_sample_id_pattern_is_the_deployments(settings, real_cell_png):
    from fastapi.testclient import TestClient

    from app.main import create_app

    strict = settings.model_copy(update={"sample_id_pattern": r"S\d{2}-\d{5}"})
    with TestClient(create_app(strict)) as client:
        files = {"file": ("c.png", real_cell_png)}
        assert client.post("/api/v1/predict?sample_id=LAB-42", files=files).status_code == 422
        assert client.post("/api/v1/predict?sample_id=S26-12345", files=files).status_code == 200
        schema = client.get("/openapi.json").json()
        (parameter,) = schema["paths"]["/api/v1/samples/{sample_id}"]["get"]["parameters"]
        assert parameter["schema"]["pattern"] == r"^(?:S\d{2}-\d{5})$"


def test_a_sample_carries_its_blast_share_and_score(client, real_cell_png, encode_png):
    blank = encode_png(np.zeros((64, 64, 3), np.uint8))  # no cell: not assessable
    predictions = [
        item["prediction"]
        for item in client.post(
            "/api/v1/predict/batch?sample_id=LAB-7",
            files=[("files", ("a.png", real_cell_png)), ("files", ("b.png", blank))],
        ).json()["results"]
    ]
    sample = client.get("/api/v1/samples/LAB-7").json()
    share = sample["blast_share"]
    assert share["n_cells"] == 2
    assert share["n_assessable"] == 1
    assert share["n_reviewed"] == 0
    assert share["observed"] == (1.0 if predictions[0]["label"] == "ALL" else 0.0)
    assert 0.0 <= share["ci_low"] <= share["corrected"] <= share["ci_high"] <= 1.0
    assert share["too_wide"] is True  # one cell says little
    assert share["more_cells_needed"] > 10
    assert share["sensitivity"] == 0.8
    assert share["specificity"] == 0.75
    assert share["sensitivity_counts"] == [800, 200]
    assert share["specificity_counts"] == [750, 250]
    assert share["source"].startswith("model card brightness v1")
    assert "out-of-fold predictions" in share["source"]
    assert share["rates"] == "held_out_training_subjects"  # the test card has no other
    assert sample["sample_score"] == predictions[0]["probability_all"]


def test_the_bundled_default_corrects_with_its_rates_on_patients_it_never_saw(
    bundled_client, real_cell_png
):
    from app.core.blast_share import held_out_counts
    from app.core.manifest import load_manifest
    from app.settings import bundled_model_store

    bundled_client.post("/api/v1/predict?sample_id=LAB-9", files={"file": ("a.png", real_cell_png)})
    share = bundled_client.get("/api/v1/samples/LAB-9").json()["blast_share"]
    model = bundled_client.get("/api/v1/models").json()
    default = next(m for m in model["models"] if m["default"])
    card = held_out_counts(load_manifest(bundled_model_store() / default["id"]))
    assert share["rates"] == "unseen_patients"
    assert share["source"].startswith(f"model card {default['id']}")
    assert "unseen subjects" in share["source"]
    assert (share["sensitivity"], share["specificity"]) == (card.sensitivity, card.specificity)
    assert "/" not in share["source"].split(":", 1)[1]  # no local path in an answer


def test_a_reviewed_cell_replaces_the_models_call_in_the_share(client, real_cell_png):
    prediction = client.post(
        "/api/v1/predict?sample_id=LAB-8", files={"file": ("a.png", real_cell_png)}
    ).json()
    opposite = "HEM" if prediction["label"] == "ALL" else "ALL"
    response = client.post(
        "/api/v1/reviews", json=review_json(prediction, "LAB-8", decision=opposite, reviewer="Dr A")
    )
    assert response.status_code == 201
    share = client.get("/api/v1/samples/LAB-8").json()["blast_share"]
    assert share["n_reviewed"] == 1
    assert share["n_model_called"] == 0
    assert share["observed"] == share["corrected"] == (1.0 if opposite == "ALL" else 0.0)


def test_samples_are_listed_newest_first_with_paging(client, real_cell_png, encode_png):
    for n in range(3):
        cell = encode_png(np.full((64, 64, 3), 40 + n, np.uint8))
        client.post(f"/api/v1/predict?sample_id=LIST-{n}", files={"file": ("c.png", cell)})
    listed = client.get("/api/v1/samples?limit=2").json()
    assert listed["total"] == 3
    assert [s["sample_id"] for s in listed["samples"]] == ["LIST-2", "LIST-1"]
    assert listed["samples"][0]["cells"] == 1
    assert listed["samples"][0]["reviewed"] == 0
    rest = client.get("/api/v1/samples?limit=2&offset=2").json()["samples"]
    assert [s["sample_id"] for s in rest] == ["LIST-0"]
    assert client.get("/api/v1/samples?limit=0").status_code == 422
    # the page is read with OFFSET in SQL: past what the engines take is a bad parameter
    assert client.get(f"/api/v1/samples?offset={2**63}").status_code == 422


def test_samples_list_is_behind_the_api_key(model_store, tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(
        model_store=model_store, api_key="s3cret", audit_log_path=tmp_path / "a.sqlite3"
    )
    with TestClient(create_app(settings)) as keyed:
        assert keyed.get("/api/v1/samples").status_code == 401
        answer = keyed.get("/api/v1/samples", headers={"X-API-Key": "s3cret"})
        assert answer.status_code == 200


def test_the_same_image_again_in_a_sample_is_a_repeat_counted_once(client, real_cell_png):
    first = client.post(
        "/api/v1/predict?sample_id=REP-1", files={"file": ("a.png", real_cell_png)}
    ).json()
    again = client.post(
        "/api/v1/predict/batch?sample_id=REP-1", files=[("files", ("a-copy.png", real_cell_png))]
    ).json()["results"][0]["prediction"]
    assert first["repeat_of"] is None
    assert again["repeat_of"] == first["request_id"]
    assert again["probability_all"] == first["probability_all"]
    sample = client.get("/api/v1/samples/REP-1").json()
    assert sample["counts"]["images"] == 1
    assert [p["request_id"] for p in sample["predictions"]] == [first["request_id"]]
    assert sample["blast_share"]["n_cells"] == 1


def test_a_not_assessable_answer_has_no_label_in_json_and_csv(client, encode_png):
    grey = encode_png(np.full((64, 64, 3), 128, np.uint8))  # no cell on black
    answer = client.post("/api/v1/predict", files={"file": ("grey.png", grey)}).json()
    assert answer["assessable"] is False
    assert answer["label"] is None
    assert 0.0 <= answer["probability_all"] <= 1.0  # still there for who asks
    csv_text = client.post(
        "/api/v1/predict/batch?format=csv", files=[("files", ("grey.png", grey))]
    ).text
    import csv
    import io

    (row,) = list(csv.DictReader(io.StringIO(csv_text)))
    assert row["assessable"] == "false"
    assert row["label"] == ""


def test_a_withdrawn_upload_leaves_the_sample(client, real_cell_png, encode_png):
    other = encode_png(np.full((64, 64, 3), 50, np.uint8))
    client.post(
        "/api/v1/predict?sample_id=W-1",
        files={"file": ("a.png", real_cell_png)},
        headers={"X-Request-ID": "upload-kept"},
    )
    client.post(
        "/api/v1/predict?sample_id=W-1",
        files={"file": ("b.png", other)},
        headers={"X-Request-ID": "upload-cancelled"},
    )
    response = client.post(
        "/api/v1/samples/W-1/withdrawals", json={"client_request_id": "upload-cancelled"}
    )
    assert response.status_code == 204
    sample = client.get("/api/v1/samples/W-1").json()
    assert sample["counts"]["images"] == 1
    assert client.get("/api/v1/samples").json()["samples"][0]["cells"] == 1
    assert [w["client_request_id"] for w in sample["withdrawals"]] == ["upload-cancelled"]


def test_a_sample_whose_every_cell_was_withdrawn_answers_with_no_cell(client, real_cell_png):
    """Such a sample used to answer 404 "no image was scored for sample", though one was."""
    client.post(
        "/api/v1/predict?sample_id=W-2",
        files={"file": ("a.png", real_cell_png)},
        headers={"X-Request-ID": "upload-gone"},
    )
    client.post("/api/v1/samples/W-2/withdrawals", json={"client_request_id": "upload-gone"})
    response = client.get("/api/v1/samples/W-2")
    assert response.status_code == 200
    sample = response.json()
    assert sample["predictions"] == []
    assert sample["counts"]["images"] == 0
    assert [w["client_request_id"] for w in sample["withdrawals"]] == ["upload-gone"]
    assert sample["headline"]["text"] == "no assessable reviewed cell yet"
    assert client.get("/api/v1/samples/never-seen").status_code == 404


def test_two_replicas_on_one_postgresql_hold_one_sample(
    start_server, model_store, postgres_url, real_cell_png, tmp_path
):
    import httpx

    first, second = (
        start_server(
            LEUKOLENS_MODEL_STORE=str(model_store),
            LEUKOLENS_DATABASE_URL=postgres_url,
            LEUKOLENS_AUDIT_LOG_PATH=str(tmp_path / f"replica-{n}.sqlite3"),
        )
        for n in range(2)
    )
    scored = httpx.post(
        f"{first}/api/v1/predict?sample_id=REPLICA-1",
        files={"file": ("a.png", real_cell_png)},
        timeout=30,
    ).json()
    decision = review_json(scored, "REPLICA-1", decision="HEM", reviewer="Dr B")
    assert httpx.post(f"{second}/api/v1/reviews", json=decision, timeout=30).status_code == 201
    for base in (first, second):
        sample = httpx.get(f"{base}/api/v1/samples/REPLICA-1", timeout=30).json()
        assert [p["request_id"] for p in sample["predictions"]] == [scored["request_id"]]
        assert [d["reviewer"] for d in sample["decisions"]] == ["Dr B"]
        listed = httpx.get(f"{base}/api/v1/samples", timeout=30).json()["samples"]
        assert [(s["sample_id"], s["reviewed"]) for s in listed] == [("REPLICA-1", 1)]
    # neither replica wrote the sample beside its own audit file
    for n in range(2):
        local = tmp_path / f"replica-{n}.sqlite3"
        assert not local.exists() or b"REPLICA-1" not in local.read_bytes()


def test_a_sample_record_that_cannot_be_written_is_a_503_with_the_reason(
    model_store, tmp_path, real_cell_png
):
    import sqlite3

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    database = tmp_path / "records.sqlite3"
    settings = Settings(
        model_store=model_store, audit_log_path=database, audit_busy_timeout_seconds=0.2
    )
    with TestClient(create_app(settings)) as client:
        scored = client.post(
            "/api/v1/predict?sample_id=LOCK-1", files={"file": ("a.png", real_cell_png)}
        ).json()
        holder = sqlite3.connect(database, timeout=0.1)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
        try:
            answer = client.post(
                "/api/v1/predict?sample_id=LOCK-1", files={"file": ("b.png", real_cell_png)}
            )
            assert answer.status_code == 503
            assert "could not be written" in answer.json()["detail"]
            review = client.post(
                "/api/v1/reviews",
                json=review_json(scored, "LOCK-1", decision="HEM", reviewer="Dr A"),
            )
            assert review.status_code == 503
        finally:
            holder.rollback()
            holder.close()
        assert client.get("/api/v1/samples/LOCK-1").json()["counts"]["images"] == 1
