"""Who decided. A decision was recorded under whatever `reviewer` the JSON
said, from anyone holding the API key; where the deployment names the user (a sign-on proxy's
header, a reviewer's own key) the record now takes its word, and says so."""

import ipaddress

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.web.reviewer_identity import Reviewer, peer_is_trusted, who_decided

PROXY = ("10.0.0.5", 40000)
ELSEWHERE = ("192.168.1.77", 40000)
HEADER = "X-Forwarded-User"
SHARED_KEY = "shared-key"
ALICE_KEY = "alice-key"


def configured(settings, **changes):
    """The test settings with `changes`, validated as the environment's would be."""
    return Settings(**{**settings.model_dump(), **changes})


def scored_decision(client, headers=None, **fields):
    """A decision's JSON on an image freshly scored for sample S-1."""
    response = client.post(
        "/api/v1/predict/batch?sample_id=S-1",
        files=[("files", ("c.png", fields.pop("png")))],
        headers=headers or {},
    )
    assert response.status_code == 200
    prediction = response.json()["results"][0]["prediction"]
    return {
        "request_id": prediction["request_id"],
        "image_sha256": prediction["image_sha256"],
        "sample_id": "S-1",
        "decision": "ALL",
        **fields,
    }


def assert_refused_403(client, body: dict, headers: dict, reason: str) -> None:
    """The decision `body` sent with `headers` is answered 403, `reason` in the detail."""
    response = client.post("/api/v1/reviews", json=body, headers=headers)
    assert response.status_code == 403
    assert reason in response.json()["detail"]


@pytest.fixture
def sso_client(settings):
    app = create_app(
        configured(settings, reviewer_header=HEADER, trusted_proxies=["10.0.0.0/29", "::1"])
    )
    with TestClient(app, client=PROXY) as client:
        yield client


@pytest.fixture
def keyed_client(settings):
    app = create_app(
        configured(
            settings,
            api_key=SHARED_KEY,
            reviewer_keys={"Dr Alice": ALICE_KEY, "Dr Bob": "bob-key"},
        )
    )
    with TestClient(app) as client:
        yield client


def test_the_sign_on_header_names_who_decided(sso_client, real_cell_png):
    body = scored_decision(sso_client, png=real_cell_png)
    response = sso_client.post("/api/v1/reviews", json=body, headers={HEADER: "jdoe"})
    assert response.status_code == 201
    assert (response.json()["reviewer"], response.json()["reviewer_source"]) == (
        "jdoe",
        "sso_header",
    )
    same_name = {**body, "reviewer": "jdoe"}
    assert sso_client.post("/api/v1/reviews", json=same_name, headers={HEADER: "jdoe"}).is_success
    decisions = sso_client.get("/api/v1/samples/S-1").json()["decisions"]
    assert [(d["reviewer"], d["reviewer_source"]) for d in decisions] == [
        ("jdoe", "sso_header")
    ] * 2


def test_the_header_from_any_other_address_is_refused(settings, real_cell_png):
    app = create_app(configured(settings, reviewer_header=HEADER, trusted_proxies=["10.0.0.5"]))
    with TestClient(app, client=ELSEWHERE) as client:
        body = scored_decision(client, png=real_cell_png, reviewer="jdoe")
        assert_refused_403(client, body, {HEADER: "jdoe"}, "LEUKOLENS_TRUSTED_PROXIES")
        assert client.get("/api/v1/samples/S-1").json()["decisions"] == []


def test_without_the_header_a_decision_is_refused_401(sso_client, real_cell_png):
    """The typed name no longer counts once the deployment can say who is signed in."""
    body = scored_decision(sso_client, png=real_cell_png, reviewer="Dr Anyone")
    for headers in ({}, {HEADER: "  "}):
        response = sso_client.post("/api/v1/reviews", json=body, headers=headers)
        assert response.status_code == 401
        assert HEADER in response.json()["detail"]


def test_a_reviewer_other_than_the_signed_in_one_is_refused_403(sso_client, real_cell_png):
    body = scored_decision(sso_client, png=real_cell_png, reviewer="Dr Someone Else")
    assert_refused_403(sso_client, body, {HEADER: "jdoe"}, "'jdoe'")
    assert sso_client.get("/api/v1/samples/S-1").json()["decisions"] == []


def test_the_header_sent_twice_is_refused(sso_client, real_cell_png):
    body = scored_decision(sso_client, png=real_cell_png)
    response = sso_client.post(
        "/api/v1/reviews", json=body, headers=[(HEADER, "jdoe"), (HEADER, "admin")]
    )
    assert response.status_code == 403


def test_a_reviewers_own_key_names_who_decided(keyed_client, real_cell_png):
    alice = {"X-API-Key": ALICE_KEY}
    body = scored_decision(keyed_client, headers=alice, png=real_cell_png)
    response = keyed_client.post("/api/v1/reviews", json=body, headers=alice)
    assert response.status_code == 201
    assert (response.json()["reviewer"], response.json()["reviewer_source"]) == (
        "Dr Alice",
        "reviewer_key",
    )
    # Her key opens the rest of the API as the shared one does.
    sample = keyed_client.get("/api/v1/samples/S-1", headers=alice).json()
    assert [d["reviewer"] for d in sample["decisions"]] == ["Dr Alice"]


def test_a_key_cannot_decide_under_another_name(keyed_client, real_cell_png):
    alice = {"X-API-Key": ALICE_KEY}
    body = scored_decision(keyed_client, headers=alice, png=real_cell_png, reviewer="Dr Bob")
    assert_refused_403(keyed_client, body, alice, "'Dr Alice'")


def test_the_shared_key_names_no_reviewer(keyed_client, real_cell_png):
    shared = {"X-API-Key": SHARED_KEY}
    body = scored_decision(keyed_client, headers=shared, png=real_cell_png, reviewer="Dr Alice")
    assert_refused_403(keyed_client, body, shared, "LEUKOLENS_REVIEWER_KEYS")
    for headers in ({}, {"X-API-Key": "alice-ke"}):
        assert keyed_client.post("/api/v1/reviews", json=body, headers=headers).status_code == 401


def test_reviewer_keys_alone_close_the_api(settings):
    app = create_app(configured(settings, reviewer_keys={"Dr Alice": ALICE_KEY}))
    with TestClient(app) as client:
        assert client.get("/api/v1/models").status_code == 401
        assert client.get("/api/v1/models", headers={"X-API-Key": ALICE_KEY}).status_code == 200


def test_who_decided_without_an_identity_is_the_typed_name_marked_as_such():
    assert who_decided("A. Tech", None) == Reviewer("A. Tech", "free_text")
    signed_in = Reviewer("jdoe", "sso_header")
    assert who_decided(None, signed_in) == signed_in
    assert who_decided("jdoe", signed_in) == signed_in


@pytest.mark.parametrize(
    ("host", "trusted"),
    [
        ("10.0.0.5", True),
        ("10.0.0.8", False),
        ("::ffff:10.0.0.5", True),  # IPv4-mapped
        ("::1", True),
        ("testclient", False),  # not an address
        (None, False),
    ],
)
def test_only_allow_listed_peers_are_trusted(host, trusted):
    proxies = [ipaddress.ip_network("10.0.0.0/29"), ipaddress.ip_network("::1")]
    assert peer_is_trusted(host, proxies) is trusted


def test_the_keys_never_reach_the_openapi_document(keyed_client):
    document = keyed_client.get("/openapi.json").text
    assert ALICE_KEY not in document
