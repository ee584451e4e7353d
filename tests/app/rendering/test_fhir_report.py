from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle

from app.core.domain.samples import BlastShare, SampleCounts, SamplePrediction, SampleReport
from app.core.sample_headline import sample_headline
from app.rendering.fhir_report import ModelDevice, conclusion, sample_bundle

NOW = datetime(2026, 12, 7, 18, 19, 36, tzinfo=UTC)
DEVICE = ModelDevice(id="m", version="3", name="Model M", card_sha256="c" * 64)


def cell(n: int, model: str = "m") -> SamplePrediction:
    return SamplePrediction(
        time=NOW,
        request_id=f"r{n}",
        image_sha256=f"{n:064x}",
        model_id=model,
        model_version="3",
        probability_all=0.7,
        label="ALL",
        state="suggests_all",
        assessable=True,
    )


def report(share: BlastShare | None, cells: int = 2) -> SampleReport:
    predictions = [cell(n) for n in range(cells)]
    sample = SampleReport(
        sample_id="S-1",
        predictions=predictions,
        decisions=[],
        counts=SampleCounts(
            images=cells, by_state={}, decided=0, by_decision={}, model_suggested_all_like_share=1
        ),
        blast_share=share,
    )
    sample.headline = sample_headline(predictions, [])
    return sample


def estimate_of(bundle: Bundle) -> dict:
    data = bundle.model_dump(mode="json")
    for entry in data["entry"]:
        resource = entry["resource"]
        code = resource.get("code", {}).get("coding", [{}])[0].get("code")
        if resource["resourceType"] == "Observation" and code == "model-estimated-blast-like-share":
            return resource
    raise AssertionError("no estimate")


def share(**fields) -> BlastShare:
    base = {"n_cells": 2, "n_assessable": 2, "n_reviewed": 0, "n_model_called": 2}
    return BlastShare(readable_width=0.3, **{**base, **fields})


def test_a_readable_estimate_has_its_value_and_interval_in_percent():
    readable = share(observed=0.5, corrected=0.42, ci_low=0.35, ci_high=0.5)
    estimate = estimate_of(
        sample_bundle(report(readable), [DEVICE], now=NOW, identifier_system="urn:x")
    )
    assert estimate["valueQuantity"]["value"] == 42.0
    assert estimate["valueQuantity"]["code"] == "%"
    assert [c["valueQuantity"]["value"] for c in estimate["component"]] == [35.0, 50.0]
    assert "dataAbsentReason" not in estimate
    assert "m version 3" in estimate["method"]["text"]


def test_an_estimate_too_wide_to_read_says_so_and_has_no_value():
    wide = share(observed=0.5, corrected=0.42, ci_low=0.05, ci_high=0.9, too_wide=True)
    estimate = estimate_of(
        sample_bundle(report(wide), [DEVICE], now=NOW, identifier_system="urn:x")
    )
    assert "valueQuantity" not in estimate
    assert estimate["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "not readable" in estimate["note"][0]["text"]
    assert [c["valueQuantity"]["value"] for c in estimate["component"]] == [5.0, 90.0]


def test_cells_of_several_models_name_each_and_point_to_no_one_device():
    sample = report(share(note="cells scored by several models (m v3, n v3): no single correction"))
    devices = [DEVICE, ModelDevice(id="n", version="3", name="Model N", card_sha256="d" * 64)]
    bundle = sample_bundle(sample, devices, now=NOW, identifier_system="urn:x")
    estimate = estimate_of(bundle)
    assert "device" not in estimate
    assert "m version 3, n version 3" in estimate["method"]["text"]
    assert "several models" in estimate["note"][0]["text"]
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds.count("Device") == 2


def test_the_conclusion_is_the_headline_in_one_sentence():
    text = conclusion(report(None, cells=3))
    assert text == (
        "Reviewer-confirmed ALL-like share: no assessable reviewed cell yet (3 cells in the "
        "sample, 3 undecided); a research and screening aid, not a diagnosis."
    )
    assert text.count(".") == 1
