import re
from pathlib import Path


def test_docs_work_offline(client):
    html = client.get("/docs").text
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=[\"']https?://", html)
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/swagger-ui/swagger-ui.css").status_code == 200
    version = (Path(__file__).parents[2] / "app/static/swagger-ui/VERSION.txt").read_text()
    assert version.startswith("Swagger UI 5.")  # 4.x cannot read OpenAPI 3.1
    assert client.get("/openapi.json").json()["info"]["title"] == "LeukoLens"
