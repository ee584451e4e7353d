"""Who did what, through the API, in the three ways a lab runs the server
(reviewers' own keys beside a shared key, a sign-on proxy, open) and on both databases
(SQLite, and PostgreSQL with the server connected as the least-privilege app role of
deploy/postgresql/roles.sql).

Each reproduces what was found on the earlier code: anyone withdrawing anyone's upload
(a reviewed one included, or before it arrived), blank and merged reviewer names stored, a
retried decision stored twice, SQL below the API rewriting or emptying the record, and a
decision answered 201 gone after a restart with the audit off."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import review_json

SHARED = "shared-key"
KEYS = {"Dr Alice": "alice-key", "Dr Bob": "bob-key"}
HEADER = "X-Forwarded-User"
PROXY = ("10.0.0.5", 40000)
PEOPLE = {"alice": "Dr Alice", "bob": "Dr Bob"}


@dataclass
class Lab:
    """The server as one lab runs it, and how each person calls it there."""

    mode: str
    database: str
    settings: Settings
    sql_url: str  # the database as the server's own role reaches it
    client: TestClient = field(init=False)

    @property
    def people_are_told_apart(self) -> bool:
        return self.mode != "open"

    def headers(self, who: str) -> dict[str, str]:
        """alice, bob, or nobody: the shared key, no sign-on, or simply the open server."""
        if self.mode == "reviewer_keys":
            return {"X-API-Key": KEYS[PEOPLE[who]] if who in PEOPLE else SHARED}
        if self.mode == "sign_on":
            return {HEADER: who} if who in PEOPLE else {}
        return {}

    def recorded_name(self, who: str) -> str:
        return {"reviewer_keys": PEOPLE[who], "sign_on": who, "open": PEOPLE[who]}[self.mode]

    def upload(self, who: str, sample_id: str, png: bytes, upload_id: str) -> dict:
        response = self.client.post(
            f"/api/v1/predict?sample_id={sample_id}",
            files={"file": ("c.png", png)},
            headers={**self.headers(who), "X-Request-ID": upload_id},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def decide(
        self, who: str, sample_id: str, scored: dict, headers: dict | None = None, **fields
    ) -> httpx.Response:
        body = review_json(scored, sample_id, **{"decision": "ALL", **fields})
        if self.mode == "open":
            body.setdefault("reviewer", PEOPLE[who])
        sent = {**self.headers(who), **(headers or {})}
        return self.client.post("/api/v1/reviews", json=body, headers=sent)

    def withdraw(self, who: str, sample_id: str, upload_id: str) -> httpx.Response:
        return self.client.post(
            f"/api/v1/samples/{sample_id}/withdrawals",
            json={"client_request_id": upload_id},
            headers=self.headers(who),
        )

    def sample(self, sample_id: str) -> dict:
        return self.client.get(f"/api/v1/samples/{sample_id}", headers=self.headers("alice")).json()

    def restart(self) -> None:
        self.client.__exit__(None, None, None)
        self.client = TestClient(create_app(self.settings), client=PROXY).__enter__()


def lab_settings(settings: Settings, mode: str, database_url: str | None, **changes) -> Settings:
    identity = {
        "reviewer_keys": {"api_key": SHARED, "reviewer_keys": KEYS},
        "sign_on": {"reviewer_header": HEADER, "trusted_proxies": ["10.0.0.0/29"]},
        "open": {},
    }[mode]
    database = {"database_url": database_url} if database_url else {}
    return Settings(**{**settings.model_dump(), **identity, **database, **changes})


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> tuple[str, str | None, str | None]:
    """(name, the server's database URL or None for the SQLite file, its SQL URL)."""
    if request.param == "sqlite":
        return "sqlite", None, None
    split = request.getfixturevalue("least_privilege_database")
    return "postgresql", split.app_url, split.app_url


@pytest.fixture(params=["reviewer_keys", "sign_on", "open"])
def lab(request, settings, database) -> Iterator[Lab]:
    name, database_url, sql_url = database
    configured = lab_settings(settings, request.param, database_url)
    found = Lab(request.param, name, configured, sql_url or str(configured.audit_log_path))
    found.client = TestClient(create_app(configured), client=PROXY).__enter__()
    yield found
    found.client.__exit__(None, None, None)


# -- 1. ownership of uploads and withdrawals ---------------------------------------------------


def test_an_upload_is_withdrawn_by_whom_it_belongs_to_only(lab, real_cell_png, encode_png):
    import numpy as np

    other = encode_png(np.full((64, 64, 3), 60, np.uint8))
    lab.upload("alice", "OWN-1", real_cell_png, "upload-kept")
    lab.upload("alice", "OWN-1", other, "upload-alices")
    if lab.people_are_told_apart:
        for stranger in ("bob", "nobody"):  # another reviewer; the shared key / no sign-on
            refused = lab.withdraw(stranger, "OWN-1", "upload-alices")
            assert refused.status_code == 403
            assert "only whoever uploaded it can withdraw it" in refused.json()["detail"]
        assert len(lab.sample("OWN-1")["predictions"]) == 2
    (cell, _) = lab.sample("OWN-1")["predictions"]
    expected_owner = {
        "reviewer_keys": ("Dr Alice", "reviewer_key"),
        "sign_on": ("alice", "sso_header"),
        "open": ("", "anonymous"),
    }[lab.mode]
    assert (cell["uploader"], cell["uploader_source"]) == expected_owner
    assert lab.withdraw("alice", "OWN-1", "upload-alices").status_code == 204
    assert [p["image_sha256"] for p in lab.sample("OWN-1")["predictions"]] == [cell["image_sha256"]]


def test_a_reviewed_cell_is_never_withdrawn(lab, real_cell_png):
    scored = lab.upload("alice", "OWN-2", real_cell_png, "upload-reviewed")
    assert lab.decide("bob", "OWN-2", scored).status_code == 201
    refused = lab.withdraw("alice", "OWN-2", "upload-reviewed")
    assert refused.status_code == 409
    assert "not_assessable" in refused.json()["detail"]
    sample = lab.sample("OWN-2")
    assert len(sample["predictions"]) == 1
    assert sample["counts"]["by_decision"]["ALL"] == 1


def test_a_withdrawal_names_an_upload_that_exists_and_nothing_is_filed_for_later(
    lab, real_cell_png
):
    early = lab.withdraw("alice", "OWN-3", "upload-guessed")
    assert early.status_code == 404
    assert "nothing was filed" in early.json()["detail"]
    lab.upload("alice", "OWN-3", real_cell_png, "upload-guessed")
    assert len(lab.sample("OWN-3")["predictions"]) == 1  # it arrives and stays
    assert lab.withdraw("alice", "OWN-3", "upload-other").status_code == 404


def test_a_decision_on_a_withdrawn_cell_is_refused(lab, real_cell_png):
    scored = lab.upload("alice", "OWN-4", real_cell_png, "upload-gone")
    assert lab.withdraw("alice", "OWN-4", "upload-gone").status_code == 204
    assert lab.decide("alice", "OWN-4", scored).status_code == 422


# -- 5. identity hardening -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["   ", "alice, bob", "Dr\u202eecila", "Dr\u200bA", "Dr\nA"])
def test_a_reviewer_name_that_is_not_one_person_is_refused_422(lab, real_cell_png, name):
    scored = lab.upload("alice", "NAME-1", real_cell_png, "upload-1")
    response = lab.decide("alice", "NAME-1", scored, reviewer=name)
    assert response.status_code == 422
    assert lab.sample("NAME-1")["decisions"] == []


def test_a_merged_sign_on_header_is_refused(lab, real_cell_png):
    scored = lab.upload("alice", "NAME-2", real_cell_png, "upload-1")
    if lab.mode != "sign_on":  # a server that takes no sign-on ignores the header
        ignored = lab.decide("alice", "NAME-2", scored, headers={HEADER: "mallory"})
        assert ignored.json()["reviewer"] == lab.recorded_name("alice")
        return
    merged = lab.decide("alice", "NAME-2", scored, headers={HEADER: "alice, bob"})
    assert merged.status_code == 422
    assert "comma" in merged.json()["detail"]
    blank = lab.decide("alice", "NAME-2", scored, headers={HEADER: "   "})
    assert blank.status_code == 401
    assert lab.sample("NAME-2")["decisions"] == []


def test_a_retried_decision_is_stored_once_and_its_key_is_its_own(lab, real_cell_png):
    scored = lab.upload("alice", "ONCE-1", real_cell_png, "upload-1")
    key = {"Idempotency-Key": "0b9e4c4e-3f0e-4c55-9d0c-1d3c8b0c2a11"}
    first = lab.decide("alice", "ONCE-1", scored, headers=key)
    again = lab.decide("alice", "ONCE-1", scored, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = lab.decide("alice", "ONCE-1", scored, decision="HEM", headers=key)
    assert other.status_code == 409
    if lab.people_are_told_apart:  # Bob's decision is another decision, whatever its words
        assert lab.decide("bob", "ONCE-1", scored, headers=key).status_code == 409
    decisions = lab.sample("ONCE-1")["decisions"]
    assert [(d["decision"], d["reviewer"]) for d in decisions] == [
        ("ALL", lab.recorded_name("alice"))
    ]
    for bad in ("", "has space", "x" * 129):
        assert (
            lab.decide("alice", "ONCE-1", scored, headers={"Idempotency-Key": bad}).status_code
            == 422
        )


# -- 6. append-only below the API, as the server's own database role ---------------------------


def test_sql_below_the_api_can_neither_rewrite_nor_empty_the_record(lab, real_cell_png):
    scored = lab.upload("alice", "SQL-1", real_cell_png, "upload-1")
    stored = lab.decide("alice", "SQL-1", scored).json()
    sha = scored["image_sha256"]
    if lab.database == "sqlite":
        connection = sqlite3.connect(lab.sql_url)
        for statement in (
            f"REPLACE INTO review_decisions (id, time, sample_id, request_id, image_sha256, "
            f"decision, reviewer, comment) VALUES ({stored['id']}, 1, 'SQL-1', "
            f"'{scored['request_id']}', '{sha}', 'HEM', 'Mallory', '')",
            f"INSERT OR REPLACE INTO review_decisions (id, time, sample_id, request_id, "
            f"image_sha256, decision, reviewer, comment) VALUES ({stored['id']}, 1, 'SQL-1', "
            f"'{scored['request_id']}', '{sha}', 'HEM', 'Mallory', '')",
            "UPDATE review_decisions SET decision = 'HEM'",
            "DELETE FROM review_decisions",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append only"):
                connection.execute(statement)
        connection.close()
    else:
        with psycopg.connect(lab.sql_url.replace("+psycopg", "")) as connection:
            for statement in (
                "UPDATE review_decisions SET decision = 'HEM'",
                "DELETE FROM review_decisions",
                "TRUNCATE review_decisions",
                f"INSERT INTO review_decisions (id, time, sample_id, request_id, image_sha256, "
                f"decision, reviewer, comment) VALUES ({stored['id']}, 1, 'SQL-1', "
                f"'{scored['request_id']}', '{sha}', 'HEM', 'Mallory', '') "
                "ON CONFLICT (id) DO UPDATE SET decision = 'HEM'",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    connection.execute(statement)
                connection.rollback()
    assert lab.sample("SQL-1")["decisions"] == [stored]


# -- 7. durable records in every configuration that answers 201 --------------------------------


def test_with_the_audit_off_a_decision_answered_201_survives_a_restart(lab, real_cell_png):
    lab.settings = lab.settings.model_copy(update={"audit_log": False})
    lab.restart()
    scored = lab.upload("alice", "KEEP-1", real_cell_png, "upload-1")
    answered = lab.decide("alice", "KEEP-1", scored)
    assert answered.status_code == 201
    lab.restart()
    kept = lab.client.get("/api/v1/samples/KEEP-1", headers=lab.headers("alice"))
    assert kept.status_code == 200  # it was 404: the records had lived in memory
    assert kept.json()["decisions"] == [answered.json()]
    assert answered.json()["durable"] is True
    assert kept.json()["durable"] is True
