"""The sample as an HL7 v2 ORU^R01 message through the API: the same content as its FHIR
Bundle, in each state of its life cycle, and no name but the signer's."""

import hl7

from tests.conftest import fixture_cell_pngs, review_json

REVIEWER = "Dr Reviewer Hidden"
SIGNER = "Dr Signer"


def message_of(client, sample_id: str) -> hl7.Message:
    response = client.get(f"/api/v1/samples/{sample_id}/hl7v2")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
    return hl7.parse(response.text)


def fhir_values(client, sample_id: str) -> dict[str, object]:
    bundle = client.get(f"/api/v1/samples/{sample_id}/fhir").json()
    values: dict[str, object] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            code = resource["code"]["coding"][0]["code"]
            quantity = resource.get("valueQuantity")
            values[code] = resource.get("valueInteger", quantity and quantity["value"])
    return values


def hl7_values(message: hl7.Message) -> dict[str, object]:
    values: dict[str, object] = {}
    for obx in message.segments("OBX"):
        kind, value = str(obx[2]), str(obx[5])
        values[str(obx[3][0][0])] = {"NM": float, "": lambda _: None}.get(kind, str)(value)
    return values


def test_the_message_says_what_the_fhir_bundle_says_through_the_life_cycle(client):
    scored = client.post(
        "/api/v1/predict/batch?sample_id=HL7-1",
        files=[("files", (f"cell-{i}.png", png)) for i, png in enumerate(fixture_cell_pngs(3))],
    ).json()["results"]
    for item, decision in zip(scored, ["ALL", "HEM"], strict=False):
        body = review_json(item["prediction"], "HL7-1", decision=decision, reviewer=REVIEWER)
        assert client.post("/api/v1/reviews", json=body).status_code == 201
    for status in ("P", "F", "C"):
        if status == "F":
            signed = client.post(
                "/api/v1/samples/HL7-1/sign-off",
                json={"reviewer": SIGNER, "undecided_cells": "leave"},
            )
            assert signed.status_code == 201
        if status == "C":
            body = review_json(
                scored[0]["prediction"],
                "HL7-1",
                decision="HEM",
                reviewer=REVIEWER,
                amendment="second look",
            )
            assert client.post("/api/v1/reviews", json=body).status_code == 201
        message = message_of(client, "HL7-1")
        assert str(message.segment("OBR")[25]) == status
        assert str(message.segment("OBR")[3]) == "HL7-1^LeukoLens"
        fhir = fhir_values(client, "HL7-1")
        hl7_results = hl7_values(message)
        for code, value in fhir.items():
            assert hl7_results[code] == value, code
        text = str(message)
        assert REVIEWER not in text
        assert "cell-0.png" not in text
        assert text.count(SIGNER) == (0 if status == "P" else 1)


def test_an_unknown_sample_has_no_message(client):
    response = client.get("/api/v1/samples/NONE-9/hl7v2")
    assert response.status_code == 404
    assert "detail" in response.json()
