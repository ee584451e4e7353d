import re


def test_docs_work_offline(client):
    html = client.get("/docs").text
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=[\"']https?://", html)
    assert client.get("/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/swagger-ui/swagger-ui.css").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "LeukoLens"
