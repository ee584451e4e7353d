"""The page at /performance: the API's figures in the lab's words, linked from the review page
and the model card, and behind the API key where the records are."""

import time

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from bench.seeded_records import SeededLab, migrated_engine, seed
from tests.app.web.api.routes.test_performance import model_store  # noqa: F401  the card's store


@pytest.fixture
def seeded(model_store, tmp_path):  # noqa: F811
    database = tmp_path / "audit.sqlite3"
    engine = migrated_engine(f"sqlite:///{database}")
    seed(
        engine,
        SeededLab(
            samples=24,
            cells_per_sample=20,
            start=time.time() - 91 * 86400,
            days=90,
            model_id="redness",
            sensitivity=0.6,
            specificity=0.6,
        ),
    )
    engine.dispose()
    return Settings(model_store=model_store, worker_threads=1, audit_log_path=database)


def test_the_page_shows_the_apis_figures_in_words_with_plots(seeded):
    with TestClient(create_app(seeded)) as client:
        figures = client.get("/api/v1/performance?period=week").json()
        page = client.get("/performance?period=week")
        assert page.status_code == 200
        html = page.text
        c = figures["confusion"]
        assert (
            f"Of {c['tp'] + c['fn']:,} cells your reviewers confirmed ALL-like, the model "
            f"suggested ALL for {c['tp']:,}"
        ) in html
        for name in ("sensitivity", "specificity", "balanced_accuracy"):
            assert f'id="plot-{name}"' in html
        assert html.count('class="card-band"') == 3
        assert html.count('class="local-point"') >= 20  # 13 weeks, each rate with its range
        # Sensitivity 0.6 against the card's 0.8 to 0.97: the warning, in plain words.
        assert figures["drift"]["alert"] is True
        assert "Warning: the model does worse here than its card says" in html
        assert "more reviewed samples like these" in html or "already within" in html
        assert "training adapt</code> would use <strong>24 people" in html
        assert "./scripts/train adapt --model" in html
        assert "--from-records sqlite:///" in html


def test_the_review_page_and_the_model_card_link_to_it(client):
    assert 'href="/performance"' in client.get("/").text
    card = client.get("/models/redness").text
    assert 'href="/performance?model=redness"' in card


def test_behind_the_api_key_the_page_asks_for_it(seeded):
    settings = Settings(**{**seeded.model_dump(), "api_key": "secret"})
    with TestClient(create_app(settings)) as client:
        locked = client.get("/performance").text
        assert 'id="performance-locked"' in locked
        assert 'id="api-key"' in locked
        assert "cells your reviewers confirmed" not in locked
        opened = client.get("/performance", headers={"X-API-Key": "secret"}).text
        assert "cells your reviewers confirmed" in opened


def test_bad_parameters_get_a_readable_page(client):
    response = client.get("/performance?model=nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "unknown model" in response.text
