"""GET /api/v1/performance: the lab's own figures from its reviewers' decisions, behind the
API key like the records, with the card's unseen-patient rates as the reference."""

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.manifest import Evaluation, load_manifest, write_manifest
from app.core.model_registry import record_model
from app.main import create_app
from app.settings import Settings
from tests.conftest import (
    png_bytes,
    review_json,
    write_channel_mean_model,
    write_mean_brightness_model,
)

UNSEEN = Evaluation(
    protocol="unseen subjects (other people): as served",
    metrics={
        "threshold": 0.5,
        "cells_all": 81,
        "subjects_all_all": 17,
        "subjects_hem_all": 13,
        **{
            f"{name}_all{suffix}": value
            for name, (v, lo, hi) in {
                "sensitivity": (0.9, 0.8, 0.97),
                "specificity": (0.6, 0.4, 0.75),
                "balanced_accuracy": (0.75, 0.65, 0.84),
            }.items()
            for suffix, value in (("", v), ("_low", lo), ("_high", hi))
        },
    },
)


@pytest.fixture
def model_store(tmp_path):
    store = tmp_path / "store"
    model_dir = write_channel_mean_model(store / "redness", (8.0, 0.0, 0.0))
    write_manifest(load_manifest(model_dir).model_copy(update={"evaluations": [UNSEEN]}), model_dir)
    record_model(store, model_dir, default=True)
    write_mean_brightness_model(store / "other")
    record_model(store, store / "other")
    return store


def cell(radius: int, seed: int) -> bytes:
    """One round red cell on black: the test model calls a large one (radius 20 or more)
    ALL-like, a small one normal."""
    image = np.zeros((64, 64, 3), np.uint8)
    cv2.circle(image, (32, 32), radius, (255, 60, 60), -1)
    image[32, 32] = (255, seed % 256, seed // 256)  # distinct bytes, same call
    return png_bytes(image)


def score(client, sample_id: str, cells: list[bytes], model: str | None = None) -> list[dict]:
    query = f"?sample_id={sample_id}" + (f"&model={model}" if model else "")
    answers = []
    for start in range(0, len(cells), 4):  # the test settings' batch limit
        response = client.post(
            f"/api/v1/predict/batch{query}",
            files=[
                ("files", (f"{i}.png", data)) for i, data in enumerate(cells[start : start + 4])
            ],
        )
        assert response.status_code == 200, response.text
        answers += [item["prediction"] for item in response.json()["results"]]
    return answers


def test_the_figures_count_what_the_reviewers_decided(client):
    expected = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for s in range(6):
        answers = score(client, f"LAB-{s}", [cell(8 + 4 * c, s * 10 + c) for c in range(6)])
        for c, answer in enumerate(answers):
            assert answer["assessable"], answer
            truth = "ALL" if (c + s) % 3 else "HEM"
            client.post(
                "/api/v1/reviews",
                json=review_json(answer, f"LAB-{s}", decision=truth, reviewer=f"Dr {s % 2}"),
            ).raise_for_status()
            called = answer["label"]
            key = {
                ("ALL", "ALL"): "tp",
                ("HEM", "ALL"): "fp",
                ("HEM", "HEM"): "tn",
                ("ALL", "HEM"): "fn",
            }[truth, called]
            expected[key] += 1
    other = score(client, "LAB-X", [cell(28, 999)], model="other")  # another model's cell
    client.post(
        "/api/v1/reviews", json=review_json(other[0], "LAB-X", decision="HEM", reviewer="Dr 9")
    ).raise_for_status()
    body = client.get("/api/v1/performance").json()
    assert body["model"] == {"id": "redness", "version": "1"}
    assert body["confusion"] == expected
    assert min(expected.values()) > 0  # every kind of call and decision
    assert (body["cells"], body["samples"], body["reviewers"]) == (36, 6, 2)
    assert body["sensitivity"]["method"] == "sample_resampling"
    tp, fn = expected["tp"], expected["fn"]
    assert body["sensitivity"]["value"] == pytest.approx(tp / (tp + fn))
    assert body["reference"]["sensitivity"] == {"value": 0.9, "low": 0.8, "high": 0.97}
    assert body["reference"]["source"].startswith("model card redness v1: unseen subjects")
    assert body["drift"]["sensitivity"] in {"within", "below", "above"}
    assert [p["period"] for p in body["by_period"]] == [body["by_period"][0]["period"]]
    assert body["by_period"][0]["confusion"] == expected
    assert body["adaptation"]["ready"] is False
    other_model = client.get("/api/v1/performance?model=other").json()
    assert other_model["confusion"]["fp"] + other_model["confusion"]["tn"] == 1
    assert other_model["reference"] is None
    assert "no evaluation on patients it never saw" in other_model["reference_note"]


def test_a_window_with_no_cells_and_the_refusals(client):
    empty = client.get("/api/v1/performance?since=2001-01-01T00:00:00&until=2001-02-01&period=week")
    assert empty.status_code == 200
    body = empty.json()
    assert body["cells"] == 0
    assert body["sensitivity"]["value"] is None
    assert body["since"].startswith("2001-01-01T00:00:00")  # without a zone: UTC
    assert body["since"].endswith(("Z", "+00:00"))
    for query, status in [
        ("period=year", 422),
        ("since=yesterday", 422),
        ("since=2026-02-01&until=2026-01-01", 422),
        ("model=nope", 404),
    ]:
        response = client.get(f"/api/v1/performance?{query}")
        assert response.status_code == status, query
        assert "detail" in response.json()


def test_it_is_behind_the_api_key_like_the_records(model_store, tmp_path):
    settings = Settings(
        model_store=model_store,
        worker_threads=1,
        audit_log_path=tmp_path / "audit.sqlite3",
        api_key="secret",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/performance").status_code == 401
        assert client.get("/api/v1/samples").status_code == 401
        answer = client.get("/api/v1/performance", headers={"X-API-Key": "secret"})
        assert answer.status_code == 200
        assert answer.json()["adaptation"]["minimum_samples"] == 20


def test_the_adapt_command_names_the_records_and_the_model(client):
    from app.web.api.routes.performance import adapt_command, records_url

    settings = client.app.state.settings
    assert records_url(settings) == f"sqlite:///{settings.audit_log_path}"
    registry = client.app.state.service.registry
    command = adapt_command(settings, registry, "redness", None, None)
    assert command.startswith("./scripts/train adapt --model ")
    assert f"--from-records sqlite:///{settings.audit_log_path}" in command
    assert "--id redness-local" in command
    with_url = settings.model_copy(update={"database_url": "postgresql+psycopg://u:pw@h/db"})
    assert records_url(with_url) == '"$LEUKOLENS_DATABASE_URL"'
    assert "pw" not in adapt_command(with_url, registry, "redness", None, None)
