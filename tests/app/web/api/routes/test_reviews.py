import hashlib

import pytest

from tests.conftest import review_json


def score(client, png, sample_id="S-1"):
    response = client.post(
        f"/api/v1/predict/batch?sample_id={sample_id}", files=[("files", ("c.png", png))]
    )
    assert response.status_code == 200
    return response.json()["results"][0]["prediction"]


def test_a_review_is_stored_and_read_back(client, real_cell_png):
    scored = score(client, real_cell_png)
    assert scored["image_sha256"] == hashlib.sha256(real_cell_png).hexdigest()
    assert scored["sample_id"] == "S-1"
    body = review_json(
        scored, "S-1", decision="not_assessable", reviewer="A. Tech", comment="smudged"
    )
    response = client.post("/api/v1/reviews", json=body)
    assert response.status_code == 201
    stored = response.json()
    assert {k: stored[k] for k in body} == body
    from datetime import datetime

    recorded = datetime.fromisoformat(stored["time"])  # ISO 8601 with its time zone
    assert recorded.utcoffset() is not None
    assert recorded.utcoffset().total_seconds() == 0
    sample = client.get("/api/v1/samples/S-1").json()
    assert sample["decisions"] == [stored]
    assert sample["counts"]["by_decision"]["not_assessable"] == 1


def test_without_an_identity_the_typed_name_counts_and_is_marked_unverified(client, real_cell_png):
    """Nothing used to say that the reviewer's name was only what the client typed."""
    scored = score(client, real_cell_png)
    body = review_json(scored, "S-1", decision="HEM")
    missing = client.post("/api/v1/reviews", json=body)
    assert missing.status_code == 422
    assert "reviewer" in str(missing.json()["detail"])
    stored = client.post("/api/v1/reviews", json={**body, "reviewer": "A. Tech"}).json()
    assert (stored["reviewer"], stored["reviewer_source"]) == ("A. Tech", "free_text")
    (decision,) = client.get("/api/v1/samples/S-1").json()["decisions"]
    assert decision["reviewer_source"] == "free_text"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"decision": "maybe"}, 422),
        ({"reviewer": ""}, 422),
        ({"image_sha256": "0" * 64}, 422),  # never scored
        ({"sample_id": "S-2"}, 422),  # scored, but for another sample
        ({"sample_id": "../x"}, 422),
    ],
)
def test_bad_reviews_are_refused(client, real_cell_png, change, status):
    scored = score(client, real_cell_png)
    body = {**review_json(scored, "S-1", decision="ALL", reviewer="A. Tech"), **change}
    response = client.post("/api/v1/reviews", json=body)
    assert response.status_code == status
    assert "detail" in response.json()


def test_a_review_naming_a_patient_is_refused_with_the_reason(client, real_cell_png):
    """A sample id shaped like a name with a birth date is refused before anything
    is looked up, and the answer says why."""
    scored = score(client, real_cell_png)
    body = review_json(scored, "Jane.Doe.1962-03-14", decision="ALL", reviewer="A. Tech")
    response = client.post("/api/v1/reviews", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "sample_id"]
    assert "lab numbers only" in error["msg"]


def test_reviews_need_the_api_key_when_one_is_set(settings, real_cell_png):
    from fastapi.testclient import TestClient

    from app.main import create_app

    keyed = settings.model_copy(update={"api_key": "s3cret"})
    with TestClient(create_app(keyed)) as client:
        response = client.post("/api/v1/reviews", json={})
        assert response.status_code == 401
        assert client.get("/api/v1/samples/S-1").status_code == 401


def test_with_the_audit_off_reviews_still_go_to_the_database(settings, real_cell_png):
    """With LEUKOLENS_AUDIT_LOG=false, a decision answered 201 was once gone after
    a restart (404): the records lived in memory, and only a start-up warning said so."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    no_audit = settings.model_copy(update={"audit_log": False})
    with TestClient(create_app(no_audit)) as client:
        scored = score(client, real_cell_png, sample_id="MEM-1")
        body = review_json(scored, "MEM-1", decision="HEM", reviewer="A. Tech")
        stored = client.post("/api/v1/reviews", json=body).json()
    with TestClient(create_app(no_audit)) as restarted:
        sample = restarted.get("/api/v1/samples/MEM-1")
        assert sample.status_code == 200  # it was 404
        assert sample.json()["counts"]["decided"] == 1
        assert stored["durable"] is True
        # the audit itself stays off: no prediction row was written
        assert restarted.app.state.review_records.predictions.rows() == []


def test_records_in_memory_only_by_an_explicit_setting_and_every_answer_says_so(
    settings, real_cell_png, caplog
):
    import logging

    from fastapi.testclient import TestClient

    from app.main import create_app

    demo = settings.model_copy(update={"records_in_memory": True})
    with caplog.at_level(logging.WARNING), TestClient(create_app(demo)) as client:
        scored = score(client, real_cell_png, sample_id="MEM-2")
        body = review_json(scored, "MEM-2", decision="HEM", reviewer="A. Tech")
        assert client.post("/api/v1/reviews", json=body).json()["durable"] is False
        assert client.get("/api/v1/samples/MEM-2").json()["durable"] is False
        assert client.get("/api/v1/samples").json()["durable"] is False
        assert client.get("/api/v1/whoami").json()["durable"] is False
        assert 'id="records-volatile"' in client.get("/").text
    assert any("memory only" in record.getMessage() for record in caplog.records)
    with TestClient(create_app(demo)) as restarted:
        assert restarted.get("/api/v1/samples/MEM-2").status_code == 404


def test_records_that_cannot_be_opened_stop_the_start_with_the_setting_to_change(
    settings, tmp_path
):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.records.review_records import RecordsDatabaseError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    unwritable = settings.model_copy(
        update={"audit_log": False, "audit_log_path": blocker / "audit.sqlite3"}
    )
    with pytest.raises(RecordsDatabaseError, match="LEUKOLENS_RECORDS_IN_MEMORY"):
        TestClient(create_app(unwritable)).__enter__()
