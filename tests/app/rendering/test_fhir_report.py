from fhir.resources.R4B.bundle import Bundle

from app.rendering.fhir_report import sample_bundle
from app.rendering.lab_results import ModelDevice
from tests.sample_reports import DEVICE, NOW, report, share


def estimate_of(bundle: Bundle) -> dict:
    data = bundle.model_dump(mode="json")
    for entry in data["entry"]:
        resource = entry["resource"]
        code = resource.get("code", {}).get("coding", [{}])[0].get("code")
        if resource["resourceType"] == "Observation" and code == "model-estimated-blast-like-share":
            return resource
    raise AssertionError("no estimate")


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
