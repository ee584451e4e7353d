import re

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


def test_model_page_shows_the_card(client):
    response = client.get("/models/brightness-64")
    assert response.status_code == 200
    html = response.text
    for text in (
        NOTICE,
        "Model card: brightness-64",
        "Intended use",
        "Known limitations",
        "Preprocessing",
        "Evaluation",
        "Training data",
        "mean-brightness-test-graph",
    ):
        assert text in html, text


def test_unknown_model_page_is_404(client):
    assert client.get("/models/nope").status_code == 404


def test_static_assets_are_served(client):
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
