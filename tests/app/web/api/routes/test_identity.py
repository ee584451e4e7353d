"""GET /api/v1/whoami: the page learns the name a decision is recorded under, and never asks
for one the server already knows."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

KEYS = {"Dr Alice": "alice-key"}


def served(settings, client=("testclient", 50000), **changes):
    return TestClient(create_app(Settings(**{**settings.model_dump(), **changes})), client=client)


@pytest.mark.parametrize(
    ("headers", "status", "answer"),
    [
        (
            {"X-API-Key": "alice-key"},
            200,
            {"reviewer": "Dr Alice", "reviewer_source": "reviewer_key"},
        ),
        ({"X-API-Key": "shared-key"}, 200, {"reviewer": None, "reviewer_source": "shared_key"}),
        ({}, 401, None),
        ({"X-API-Key": "alice-ke"}, 401, None),
    ],
)
def test_with_reviewers_keys_it_names_the_keys_reviewer(settings, headers, status, answer):
    with served(settings, api_key="shared-key", reviewer_keys=KEYS) as client:
        response = client.get("/api/v1/whoami", headers=headers)
    assert response.status_code == status
    if answer is not None:
        assert response.json() == {**answer, "durable": True}


def test_with_a_sign_on_it_names_the_signed_in_user(settings):
    with served(
        settings,
        client=("10.0.0.5", 1),
        reviewer_header="X-Forwarded-User",
        trusted_proxies=["10.0.0.5"],
    ) as client:
        signed_in = client.get("/api/v1/whoami", headers={"X-Forwarded-User": "jdoe"})
        nobody = client.get("/api/v1/whoami")
    assert signed_in.json() == {
        "reviewer": "jdoe",
        "reviewer_source": "sso_header",
        "durable": True,
    }
    assert nobody.status_code == 401
    assert "single sign-on" in nobody.json()["detail"]


@pytest.mark.parametrize("changes", [{}, {"api_key": "shared-key"}])
def test_without_reviewers_identities_the_typed_name_counts(settings, changes):
    headers = {"X-API-Key": "shared-key"} if changes else {}
    with served(settings, **changes) as client:
        answer = client.get("/api/v1/whoami", headers=headers).json()
    assert answer == {"reviewer": None, "reviewer_source": "free_text", "durable": True}
