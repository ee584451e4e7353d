"""A sample's life cycle through the API, preliminary -> final -> amended -> final,
signed by the authenticated reviewer, bound to what was signed, on SQLite and PostgreSQL."""

import sqlite3

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import fixture_cell_pngs, review_json

ALICE = {"X-API-Key": "alice-key"}
BOB = {"X-API-Key": "bob-key"}
SHARED = {"X-API-Key": "shared-key"}


def keyed_settings(settings, **changes) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "api_key": "shared-key",
            "reviewer_keys": {"Dr Alice": "alice-key", "Dr Bob": "bob-key"},
            **changes,
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def keyed_client(request, settings):
    changes = {}
    if request.param == "postgresql":
        changes["database_url"] = request.getfixturevalue("postgres_url")
    with TestClient(create_app(keyed_settings(settings, **changes))) as client:
        yield client


def scored_cells(client, sample_id: str, count: int, headers=None) -> list[dict]:
    response = client.post(
        f"/api/v1/predict/batch?sample_id={sample_id}",
        files=[("files", (f"cell{i}.png", png)) for i, png in enumerate(fixture_cell_pngs(count))],
        headers=headers or {},
    )
    assert response.status_code == 200
    return [item["prediction"] for item in response.json()["results"]]


def decide(client, cell, sample_id, decision, headers=None, **fields):
    body = review_json(cell, sample_id, decision=decision, **fields)
    return client.post("/api/v1/reviews", json=body, headers=headers or {})


def test_the_life_cycle_through_the_api(keyed_client):
    client = keyed_client
    cells = scored_cells(client, "LC-1", 3, ALICE)
    for cell, decision in zip(cells, ["ALL", "HEM", "not_assessable"], strict=True):
        assert decide(client, cell, "LC-1", decision, ALICE).status_code == 201
    sample = client.get("/api/v1/samples/LC-1", headers=ALICE).json()
    assert (sample["status"], sample["signed_off"], sample["sign_offs"]) == (
        "preliminary",
        None,
        [],
    )
    assert sample["headline"]["text"] == "50.0% of 2 assessable reviewed cells; 1 not assessable"

    signed = client.post("/api/v1/samples/LC-1/sign-off", json={"comment": "ok"}, headers=BOB)
    assert signed.status_code == 201
    first = signed.json()
    assert (first["by"], first["by_source"], first["comment"]) == ("Dr Bob", "reviewer_key", "ok")
    assert (first["cells"], first["undecided_cells"]) == (3, 0)
    assert len(first["content_sha256"]) == 64
    sample = client.get("/api/v1/samples/LC-1", headers=ALICE).json()
    assert sample["status"] == "final"
    assert sample["signed_off"] == first

    plain = decide(client, cells[1], "LC-1", "ALL", ALICE)
    assert plain.status_code == 409
    assert "amendment" in plain.json()["detail"]
    assert "Dr Bob" in plain.json()["detail"]
    assert client.get("/api/v1/samples/LC-1", headers=ALICE).json()["decisions"][-1]["id"] == 3

    amended = decide(client, cells[1], "LC-1", "ALL", ALICE, amendment="second look: blast")
    assert amended.status_code == 201
    assert amended.json()["amendment"] == "second look: blast"
    sample = client.get("/api/v1/samples/LC-1", headers=ALICE).json()
    assert sample["status"] == "amended"
    (amendment,) = sample["amendments"]
    assert amendment["image_sha256"] == cells[1]["image_sha256"]
    assert (amendment["old_decision"], amendment["new_decision"]) == ("HEM", "ALL")
    assert (amendment["reviewer"], amendment["reason"]) == ("Dr Alice", "second look: blast")
    assert sample["headline"]["text"] == "100.0% of 2 assessable reviewed cells; 1 not assessable"

    again = client.post("/api/v1/samples/LC-1/sign-off", json={}, headers=ALICE)
    assert again.status_code == 201
    sample = client.get("/api/v1/samples/LC-1", headers=ALICE).json()
    assert sample["status"] == "final"
    assert [s["by"] for s in sample["sign_offs"]] == ["Dr Bob", "Dr Alice"]  # history kept
    assert sample["signed_off"]["content_sha256"] != first["content_sha256"]
    assert len(sample["amendments"]) == 1
    verification = client.get("/api/v1/samples/LC-1/verification", headers=ALICE).json()
    assert verification["verdict"] == "matches"
    assert [c["matches"] for c in verification["sign_offs"]] == [True, True]


def test_sign_off_is_refused_while_a_cell_is_undecided_unless_left(keyed_client):
    client = keyed_client
    cells = scored_cells(client, "LC-2", 3, ALICE)
    decide(client, cells[0], "LC-2", "ALL", ALICE)
    refused = client.post("/api/v1/samples/LC-2/sign-off", json={}, headers=ALICE)
    assert refused.status_code == 409
    assert "2 of 3 cells" in refused.json()["detail"]
    assert client.get("/api/v1/samples/LC-2", headers=ALICE).json()["status"] == "preliminary"
    left = client.post(
        "/api/v1/samples/LC-2/sign-off", json={"undecided_cells": "leave"}, headers=ALICE
    )
    assert left.status_code == 201
    assert left.json()["undecided_cells"] == 2
    # A decision on a cell left undecided is an amendment too.
    assert decide(client, cells[2], "LC-2", "HEM", ALICE).status_code == 409
    assert decide(client, cells[2], "LC-2", "HEM", ALICE, amendment="late").status_code == 201
    (amendment,) = client.get("/api/v1/samples/LC-2", headers=ALICE).json()["amendments"]
    assert amendment["old_decision"] is None


def test_the_signer_is_authenticated(keyed_client):
    client = keyed_client
    cells = scored_cells(client, "LC-3", 1, ALICE)
    decide(client, cells[0], "LC-3", "HEM", ALICE)
    shared = client.post("/api/v1/samples/LC-3/sign-off", json={}, headers=SHARED)
    assert shared.status_code == 403
    other = client.post("/api/v1/samples/LC-3/sign-off", json={"reviewer": "Dr Bob"}, headers=ALICE)
    assert other.status_code == 403
    assert client.post("/api/v1/samples/LC-3/sign-off", json={}).status_code == 401


def test_on_an_open_server_the_typed_name_signs(client, real_cell_png):
    scored = client.post(
        "/api/v1/predict?sample_id=OPEN-1", files={"file": ("c.png", real_cell_png)}
    ).json()
    client.post(
        "/api/v1/reviews", json=review_json(scored, "OPEN-1", decision="HEM", reviewer="A. Tech")
    )
    missing = client.post("/api/v1/samples/OPEN-1/sign-off", json={})
    assert missing.status_code == 422
    assert "reviewer" in str(missing.json()["detail"])
    signed = client.post("/api/v1/samples/OPEN-1/sign-off", json={"reviewer": "Dr Typed"})
    assert (signed.json()["by"], signed.json()["by_source"]) == ("Dr Typed", "free_text")


def test_nothing_changes_a_signed_sample_without_a_reason(client, real_cell_png, encode_png):
    import numpy as np

    scored = client.post(
        "/api/v1/predict?sample_id=SHUT-1",
        files={"file": ("c.png", real_cell_png)},
        headers={"X-Request-ID": "upload-1"},
    ).json()
    early = client.post(
        "/api/v1/reviews",
        json=review_json(scored, "SHUT-1", decision="HEM", reviewer="A", amendment="why"),
    )
    assert early.status_code == 409  # nothing to amend before sign-off
    assert "not signed off" in early.json()["detail"]
    client.post("/api/v1/reviews", json=review_json(scored, "SHUT-1", decision="HEM", reviewer="A"))
    assert client.post("/api/v1/samples/SHUT-1/sign-off", json={"reviewer": "B"}).status_code == 201
    again = client.post("/api/v1/samples/SHUT-1/sign-off", json={"reviewer": "B"})
    assert again.status_code == 409
    assert "nothing changed since" in again.json()["detail"]
    more = client.post(
        "/api/v1/predict?sample_id=SHUT-1",
        files={"file": ("d.png", encode_png(np.full((64, 64, 3), 40, np.uint8)))},
    )
    assert more.status_code == 409
    assert "a new cell would change it" in more.json()["detail"]
    withdrawn = client.post(
        "/api/v1/samples/SHUT-1/withdrawals", json={"client_request_id": "upload-1"}
    )
    assert withdrawn.status_code == 409
    assert "withdrawing an upload would change it" in withdrawn.json()["detail"]
    sample = client.get("/api/v1/samples/SHUT-1").json()
    assert (sample["status"], sample["counts"]["images"]) == ("final", 1)
    assert client.get("/api/v1/samples/SHUT-1/verification").json()["verdict"] == "matches"


def test_unknown_samples_are_404(client):
    assert client.post("/api/v1/samples/NONE-1/sign-off", json={"reviewer": "B"}).status_code == 404
    assert client.get("/api/v1/samples/NONE-1/verification").status_code == 404


def test_verification_names_a_decision_rewritten_in_the_database_file(settings):
    """An attacker with the SQLite file drops the triggers and rewrites a signed decision: the
    verification answers "changed" and names the row."""
    database = settings.audit_log_path
    with TestClient(create_app(settings)) as client:
        cells = scored_cells(client, "TAMPER-1", 2)
        for cell in cells:
            assert decide(client, cell, "TAMPER-1", "HEM", reviewer="A").status_code == 201
        assert (
            client.post("/api/v1/samples/TAMPER-1/sign-off", json={"reviewer": "B"}).status_code
            == 201
        )
        before = client.get("/api/v1/samples/TAMPER-1/verification").json()
        assert before["verdict"] == "matches"
        assert before["sign_offs"][0]["changed_rows"] == []
        target = client.get("/api/v1/samples/TAMPER-1").json()["decisions"][1]

        with sqlite3.connect(database) as connection:
            triggers = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                )
            ]
            assert "review_decisions_append_only_update" in triggers
            with pytest.raises(sqlite3.DatabaseError, match="append only"):
                connection.execute("UPDATE review_decisions SET decision = 'ALL'")
            for trigger in triggers:
                connection.execute(f"DROP TRIGGER {trigger}")
            connection.execute(
                "UPDATE review_decisions SET decision = 'ALL' WHERE id = ?", (target["id"],)
            )

        after = client.get("/api/v1/samples/TAMPER-1/verification").json()
        assert after["verdict"] == "changed"
        (check,) = after["sign_offs"]
        assert check["matches"] is False
        assert check["recomputed_content_sha256"] != check["signed_content_sha256"]
        (changed,) = check["changed_rows"]
        assert (changed["table"], changed["row_id"], changed["change"]) == (
            "review_decisions",
            target["id"],
            "changed",
        )
        assert changed["image_sha256"] == target["image_sha256"]
        # The sample answer shows the rewritten decision: only the check can say it was not signed.
        assert client.get("/api/v1/samples/TAMPER-1").json()["decisions"][1]["decision"] == "ALL"


def test_a_retried_decision_or_amendment_is_stored_once_after_sign_off(keyed_client):
    """A decision kept before sign-off and retried after it (its answer was lost) is its first
    record, not a 409; an amendment retried under its Idempotency-Key is stored once."""
    client = keyed_client
    (cell,) = scored_cells(client, "LC-4", 1, ALICE)
    first = decide(client, cell, "LC-4", "HEM", {**ALICE, "Idempotency-Key": "decide-1"})
    assert first.status_code == 201
    assert client.post("/api/v1/samples/LC-4/sign-off", json={}, headers=BOB).status_code == 201
    retried = decide(client, cell, "LC-4", "HEM", {**ALICE, "Idempotency-Key": "decide-1"})
    assert (retried.status_code, retried.headers.get("Idempotent-Replayed")) == (201, "true")
    assert retried.json()["id"] == first.json()["id"]
    amending = {**ALICE, "Idempotency-Key": "amend-1"}
    stored = decide(client, cell, "LC-4", "ALL", amending, amendment="second look")
    again = decide(client, cell, "LC-4", "ALL", amending, amendment="second look")
    assert (stored.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == stored.json()["id"]
    other = decide(client, cell, "LC-4", "ALL", amending, amendment="another reason")
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    sample = client.get("/api/v1/samples/LC-4", headers=ALICE).json()
    assert [d["decision"] for d in sample["decisions"]] == ["HEM", "ALL"]
    assert (sample["status"], len(sample["amendments"])) == ("amended", 1)


@pytest.mark.parametrize("name", ["   ", "Dr A, Dr B", "Dr\nA"])
def test_a_signer_is_one_persons_name(client, real_cell_png, name):
    scored = client.post(
        "/api/v1/predict?sample_id=OPEN-2", files={"file": ("c.png", real_cell_png)}
    ).json()
    client.post("/api/v1/reviews", json=review_json(scored, "OPEN-2", decision="HEM", reviewer="A"))
    refused = client.post("/api/v1/samples/OPEN-2/sign-off", json={"reviewer": name})
    assert refused.status_code == 422
    assert client.get("/api/v1/samples/OPEN-2").json()["status"] == "preliminary"


def test_the_signature_covers_whose_upload_it_is_never_the_idempotency_key(settings):
    """Who uploaded a cell is part of what the signer vouches for; the key a page retried a
    decision under is transport, and rewriting it changes nothing signed."""
    database = settings.audit_log_path
    with TestClient(create_app(keyed_settings(settings))) as client:
        (cell,) = scored_cells(client, "OWN-1", 1, ALICE)
        decide(client, cell, "OWN-1", "HEM", {**ALICE, "Idempotency-Key": "k-1"})
        assert client.post("/api/v1/samples/OWN-1/sign-off", json={}, headers=ALICE).is_success
        with sqlite3.connect(database) as connection:
            for (trigger,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ).fetchall():
                connection.execute(f"DROP TRIGGER {trigger}")
            connection.execute(
                "UPDATE review_decisions SET idempotency_key = 'k-2', request_fingerprint = ''"
            )
        kept = client.get("/api/v1/samples/OWN-1/verification", headers=ALICE).json()
        assert kept["verdict"] == "matches"
        assert kept["sign_offs"][0]["content_format"] == "leukolens-sample-content/2"
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE sample_predictions SET uploader = 'Dr Bob'")
        after = client.get("/api/v1/samples/OWN-1/verification", headers=ALICE).json()
        assert after["verdict"] == "changed"
        (changed,) = after["sign_offs"][0]["changed_rows"]
        assert (changed["table"], changed["change"], changed["image_sha256"]) == (
            "sample_predictions",
            "changed",
            cell["image_sha256"],
        )
