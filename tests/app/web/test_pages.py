import re
from pathlib import Path

ROOT = Path(__file__).parents[3]
NOTICE = "Research and screening aid, not a diagnosis."


def test_upload_page(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert NOTICE in html
    assert 'id="file-input"' in html
    assert re.search(r'<input id="file-input"[^>]*type="file"[^>]*multiple', html)
    assert '<option value="brightness"' in html
    # No inline script and no external asset: it must work offline in a hospital network.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"(src|href)=\"https?://", html)


def test_the_upload_page_carries_the_servers_sample_id_rule(settings):
    """The page's scripts read the rule from the page (static/js/sample-ids.js): a server with
    another pattern serves another rule, and no script or template holds a copy of one."""
    from fastapi.testclient import TestClient

    from app.core.sample_ids import DEFAULT_SAMPLE_ID_PATTERN
    from app.main import create_app

    strict = settings.model_copy(update={"sample_id_pattern": r"S\d{2}-\d{5}\Z"})
    for served, pattern, words in [
        (settings, DEFAULT_SAMPLE_ID_PATTERN, "letters, digits, dots, dashes or underscores"),
        (strict, r"S\d{2}-\d{5}\Z", r"matching S\d{2}-\d{5}\Z"),
    ]:
        with TestClient(create_app(served)) as client:
            field = re.search(r'<input id="sample-id"[^>]*>', client.get("/").text)[0]
        assert f'data-pattern="{pattern}"' in field
        assert words in field
    sources = [*(ROOT / "static" / "js").glob("*.js"), *(ROOT / "templates").glob("*.html")]
    assert not [p.name for p in sources if "{0,63}" in p.read_text()]


def test_model_page_shows_the_card(client):
    response = client.get("/models/brightness-64")
    assert response.status_code == 200
    html = response.text
    for text in (
        NOTICE,
        "Model card: mean-brightness-test-graph, 64 px",
        "(brightness-64, v1)",
        "At a glance",
        "Its card records no error rates on people it never saw.",
        "Known limitations",
        "Preprocessing",
        "Evaluation tables",
        "Training data",
        "mean-brightness-test-graph",
    ):
        assert text in html, text


def test_unknown_model_page_is_404(client):
    assert client.get("/models/nope").status_code == 404


def test_static_assets_are_served(client):
    assert client.get("/static/style.css").status_code == 200
    # The UI is ES modules from one entry point: each is served as JavaScript (a module
    # script with another type is refused) and each module it imports is there.
    assert re.search(r'<script type="module" src="/static/js/main\.js">', client.get("/").text)
    modules = sorted((ROOT / "static" / "js").glob("*.js"))
    assert modules
    for module in modules:
        response = client.get(f"/static/js/{module.name}")
        assert response.status_code == 200, module.name
        assert "javascript" in response.headers["content-type"], module.name
        for imported in re.findall(r'from "\./([\w-]+\.js)"', response.text):
            assert (module.parent / imported).is_file(), (module.name, imported)
        assert len(module.read_text().splitlines()) <= 400, module.name


def test_head_is_answered(client):
    response = client.head("/")
    assert response.status_code == 200
    assert response.text == ""


def test_ui_errors_are_pages_and_api_errors_stay_json(client):
    page = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "This page does not exist." in page.text
    assert NOTICE in page.text
    assert 'href="/models/brightness"' in page.text  # the menu still leads to every model
    card = client.get("/models/nope", headers={"Accept": "text/html"})
    assert card.status_code == 404
    assert "no model called" in card.text
    api = client.get("/api/v1/models/nope", headers={"Accept": "text/html"})
    assert api.headers["content-type"].startswith("application/json")
    assert client.get("/no-such-page").json() == {"detail": "Not Found"}


def test_model_names_are_human_and_the_card_has_no_local_paths(bundled_client):
    html = bundled_client.get("/").text
    assert "EfficientNet-Lite0, 128 px, trained on 44 people (standard)" in html
    assert "ConvNeXt-Atto, 128 px (alternative)" in html
    assert "EfficientNet-Lite0, 128 px (alternative)" in html
    for model_id in ("efficientnet-lite0-128-cell", "efficientnet-lite0-linear-128-cell"):
        card = bundled_client.get(f"/models/{model_id}").text
        assert "/tmp/" not in card
        assert "/work/" not in card
    card = bundled_client.get("/models/efficientnet-lite0-128-cell").text
    assert "At a glance" in card
    assert 'id="roc-plot"' in card
    assert 'id="confusion-matrix"' in card
    assert 'id="unseen-patients"' in card
    assert "preliminary-test patients" in card
    assert "/tmp/" not in card
    assert "/work/" not in card
    assert "[[708, 450]" not in card  # the matrix is labelled, not printed raw


def test_the_model_page_shows_what_changed_newest_first(bundled_client):
    html = bundled_client.get("/models/efficientnet-lite0-128-cell").text
    section = html[html.index('id="changelog"') :]
    assert "What changed" in section
    newest = section.index("card only, same weights")
    first = section.index("Version 1")
    assert newest < first


def test_the_default_card_shows_its_rates_on_people_of_other_batches(bundled_client):
    card = bundled_client.get("/models/efficientnet-lite0-linear-128-cell").text
    assert "On people of other acquisition batches" in card
    # The one sentence of rates, read from the card (never written here): the box says it.
    from app.core.error_rates import error_rates_sentence
    from app.core.manifest import load_manifest
    from app.settings import bundled_model_store

    manifest = load_manifest(bundled_model_store() / "efficientnet-lite0-linear-128-cell")
    sentence = error_rates_sentence(manifest)
    box = card[card.index('id="at-a-glance"') : card.index("</section>", card.index("at-a-glance"))]
    assert f'<p id="error-rates" class="error-rates"><strong>{sentence}</strong></p>' in box
    assert "Of 100" not in card  # the other set of rates is gone
    # Every person the per-person chart shows at 0% is named in the box.
    served = next(e for e in manifest.evaluations if e.per_subject_accuracy)
    at_zero = [subject for subject, a in served.per_subject_accuracy.items() if a == 0.0]
    assert len(at_zero) == 5
    worst = box[box.index('id="worst-people"') :]
    assert all(subject in worst[: worst.index("</p>")] for subject in at_zero)
