"""One time format in data. Every time the API answers (JSON, and the FHIR Bundle) is
ISO 8601 with its zone; a date alone stays a date."""

import re

from tests.conftest import fixture_cell_pngs, review_json

TIME_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


def times_in(value, path="$") -> list[tuple[str, str]]:
    """Every string in a JSON document that reads as a time, with where it is."""
    if isinstance(value, dict):
        return [t for key, item in value.items() for t in times_in(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [t for i, item in enumerate(value) for t in times_in(item, f"{path}[{i}]")]
    if isinstance(value, str) and TIME_LIKE.match(value):
        return [(path, value)]
    return []


def test_every_time_in_the_api_and_fhir_answers_is_iso_8601_with_its_zone(client):
    response = client.post(
        "/api/v1/predict/batch?sample_id=T-1",
        files=[("files", (f"c{i}.png", png)) for i, png in enumerate(fixture_cell_pngs(2))],
    )
    cells = [item["prediction"] for item in response.json()["results"]]
    answers = {"decision": None, "sign-off": None}
    answers["decision"] = client.post(
        "/api/v1/reviews", json=review_json(cells[0], "T-1", decision="ALL", reviewer="A")
    ).json()
    answers["sign-off"] = client.post(
        "/api/v1/samples/T-1/sign-off", json={"reviewer": "B", "undecided_cells": "leave"}
    ).json()
    client.post(
        "/api/v1/reviews",
        json=review_json(cells[1], "T-1", decision="HEM", reviewer="A", amendment="late"),
    )
    for path in (
        "/api/v1/samples/T-1",
        "/api/v1/samples",
        "/api/v1/samples/T-1/verification",
        "/api/v1/samples/T-1/fhir",
        "/api/v1/models/brightness",
    ):
        answers[path] = client.get(path).json()
    found = {name: times_in(answer) for name, answer in answers.items()}
    # Each answer holds the times it should: the test cannot pass on answers without any.
    assert {name: len(times) > 0 for name, times in found.items()} == dict.fromkeys(found, True)
    assert len(found["/api/v1/samples/T-1"]) >= 6  # cells, decisions, sign-off, amendment
    assert len(found["/api/v1/samples/T-1/fhir"]) >= 9  # timestamp, issued on each resource
    wrong = [(name, path, value) for name, times in found.items() for path, value in times]
    wrong = [entry for entry in wrong if not ISO_WITH_ZONE.match(entry[2])]
    assert wrong == []
