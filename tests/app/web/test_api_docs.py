import re
from pathlib import Path


def test_docs_work_offline(client):
    html = client.get("/docs").text
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=[\"']https?://", html)
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/swagger-ui/swagger-ui.css").status_code == 200
    version = (Path(__file__).parents[3] / "static/swagger-ui/VERSION.txt").read_text()
    assert version.startswith("Swagger UI 5.")  # 4.x cannot read OpenAPI 3.1
    assert client.get("/openapi.json").json()["info"]["title"] == "LeukoLens"


def _resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_the_schema_refuses_what_the_server_refuses(client, settings):
    """The schema once allowed empty files, empty or oversized batches and any model id,
    all of which the server then refused."""
    schema = client.get("/openapi.json").json()
    single = schema["paths"]["/api/v1/predict"]["post"]
    batch = schema["paths"]["/api/v1/predict/batch"]["post"]
    single_body = _resolve(
        schema, single["requestBody"]["content"]["multipart/form-data"]["schema"]
    )
    batch_body = _resolve(schema, batch["requestBody"]["content"]["multipart/form-data"]["schema"])
    assert single_body["properties"]["file"]["minLength"] == 1
    files = batch_body["properties"]["files"]
    assert (files["minItems"], files["maxItems"]) == (1, settings.max_batch_files)
    assert files["items"]["minLength"] == 1
    for operation in (single, batch):
        model = next(p for p in operation["parameters"] if p["name"] == "model")
        assert model["schema"]["anyOf"][0]["enum"] == ["brightness", "brightness-64"]
