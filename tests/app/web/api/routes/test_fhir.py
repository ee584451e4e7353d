"""The sample as a FHIR R4 Bundle, validated by fhir.resources' R4B models in each
state of its life cycle, holding no file name and no name but the signer's, and counting what
the sample answer counts."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.conftest import fixture_cell_pngs, review_json

FILE_NAMES = [f"patient-cell-{i}.png" for i in range(4)]
REVIEWER = "Dr Reviewer Hidden"
COMMENT = "Comment naming Jane Example"
REASON = "Amended after a call with Jane Example"
SIGNER = "Dr Signer"


def resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def fhir_of(client, sample_id: str) -> dict:
    response = client.get(f"/api/v1/samples/{sample_id}/fhir")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; fhirVersion=4.0"
    Bundle.model_validate_json(response.text)  # R4B models: raises on any invalid element
    return response.json()


def observation(bundle: dict, code: str) -> dict:
    (found,) = [
        o for o in resources(bundle, "Observation") if o["code"]["coding"][0]["code"] == code
    ]
    return found


def assert_counts_match_the_sample_answer(bundle: dict, sample: dict) -> None:
    headline = sample["headline"]
    assert observation(bundle, "cells-in-sample")["valueInteger"] == len(sample["predictions"])
    assert (
        observation(bundle, "cells-confirmed-all-like")["valueInteger"]
        == headline["confirmed_all_like"]
    )
    assert (
        observation(bundle, "cells-confirmed-normal")["valueInteger"]
        == headline["confirmed_normal"]
    )
    assert observation(bundle, "cells-not-assessable")["valueInteger"] == headline["not_assessable"]
    assert observation(bundle, "cells-reviewed")["valueInteger"] == sample["counts"]["decided"]
    share = observation(bundle, "reviewer-confirmed-all-like-share")
    if headline["share"] is None:
        assert "valueQuantity" not in share
    else:
        assert share["valueQuantity"] == {
            "value": round(100 * headline["share"], 1),
            "unit": "%",
            "system": "http://unitsofmeasure.org",
            "code": "%",
        }
    (report,) = resources(bundle, "DiagnosticReport")
    assert headline["text"] in report["conclusion"]


def assert_no_name_but_the_signers(text: str, signer: str | None) -> None:
    for name in (*FILE_NAMES, ".png", REVIEWER, COMMENT, REASON, "Jane Example"):
        assert name not in text, name
    if signer is not None:
        assert text.count(signer) == 1  # the performer's display, nothing else


@pytest.fixture
def reviewed(client):
    """Sample FHIR-1: four cells, three decided by REVIEWER with a comment."""
    response = client.post(
        "/api/v1/predict/batch?sample_id=FHIR-1",
        files=[
            ("files", (n, png)) for n, png in zip(FILE_NAMES, fixture_cell_pngs(4), strict=True)
        ],
    )
    cells = [item["prediction"] for item in response.json()["results"]]
    for cell, decision in zip(cells, ["ALL", "HEM", "not_assessable"], strict=False):
        body = review_json(cell, "FHIR-1", decision=decision, reviewer=REVIEWER, comment=COMMENT)
        assert client.post("/api/v1/reviews", json=body).status_code == 201
    return cells


def test_the_bundle_in_each_state_of_the_life_cycle(client, reviewed):
    bundle = fhir_of(client, "FHIR-1")
    assert bundle["type"] == "collection"
    (report,) = resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert "performer" not in report  # nobody signed yet
    assert report["identifier"] == [{"system": "urn:leukolens:sample-id", "value": "FHIR-1"}]
    assert report["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "5909-7",
        "display": "Blood smear finding [Identifier] in Blood by Light microscopy",
    }
    assert "not a diagnosis" in report["code"]["text"]
    assert_counts_match_the_sample_answer(bundle, client.get("/api/v1/samples/FHIR-1").json())
    assert_no_name_but_the_signers(json.dumps(bundle), None)
    # Every result reference resolves to an entry of the Bundle.
    urls = {entry["fullUrl"] for entry in bundle["entry"]}
    assert {r["reference"] for r in report["result"]} <= urls
    assert len(report["result"]) == len(resources(bundle, "Observation")) == 7
    (device,) = resources(bundle, "Device")
    assert device["identifier"][0]["value"] == "brightness"
    assert len(device["identifier"][1]["value"]) == 64  # the card's sha256
    assert device["version"] == [{"value": "1"}]
    estimate = observation(bundle, "model-estimated-blast-like-share")
    assert estimate["device"]["reference"] in urls
    assert "brightness version 1" in estimate["method"]["text"]

    signed = client.post(
        "/api/v1/samples/FHIR-1/sign-off",
        json={"reviewer": SIGNER, "undecided_cells": "leave", "comment": COMMENT},
    ).json()
    bundle = fhir_of(client, "FHIR-1")
    (report,) = resources(bundle, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["performer"] == [{"display": SIGNER}]
    assert report["issued"] == signed["time"]
    assert report["extension"] == [
        {
            "url": "urn:leukolens:fhir:signed-content-sha256",
            "valueString": signed["content_sha256"],
        }
    ]
    assert "1 undecided" in report["conclusion"]
    assert {o["status"] for o in resources(bundle, "Observation")} == {"final"}
    assert_counts_match_the_sample_answer(bundle, client.get("/api/v1/samples/FHIR-1").json())
    assert_no_name_but_the_signers(json.dumps(bundle), SIGNER)

    body = review_json(reviewed[0], "FHIR-1", decision="HEM", reviewer=REVIEWER, amendment=REASON)
    assert client.post("/api/v1/reviews", json=body).status_code == 201
    bundle = fhir_of(client, "FHIR-1")
    (report,) = resources(bundle, "DiagnosticReport")
    assert report["status"] == "amended"
    sample = client.get("/api/v1/samples/FHIR-1").json()
    assert report["issued"] == sample["amendments"][-1]["time"]
    assert_counts_match_the_sample_answer(bundle, sample)
    assert_no_name_but_the_signers(json.dumps(bundle), SIGNER)


def test_the_same_state_gives_the_same_resources(client, reviewed):
    first, second = fhir_of(client, "FHIR-1"), fhir_of(client, "FHIR-1")
    assert first["entry"] == second["entry"]
    client.post(
        "/api/v1/samples/FHIR-1/sign-off", json={"reviewer": SIGNER, "undecided_cells": "leave"}
    )
    assert fhir_of(client, "FHIR-1")["entry"][0]["fullUrl"] != first["entry"][0]["fullUrl"]


def test_an_unknown_sample_has_no_bundle(client):
    assert client.get("/api/v1/samples/NONE-9/fhir").status_code == 404
