"""The sample as an HL7 v2.5.1 ORU^R01 message, read back with the `hl7` package's parser."""

from datetime import UTC, datetime

import hl7
import pytest

from app.core.domain.samples import SignOffRecord
from app.rendering.hl7v2_report import hl7_time, sample_oru_r01
from tests.sample_reports import DEVICE, NOW, report, share


def message_of(sample, devices=(DEVICE,)) -> hl7.Message:
    text = sample_oru_r01(sample, list(devices), now=NOW, control_id="C-1")
    assert text.isascii()
    assert "\n" not in text
    assert text.endswith("\r")
    return hl7.parse(text)


def results(message: hl7.Message) -> dict[str, tuple[str, str, str]]:
    """Each OBX by its code: (value type, value, result status)."""
    return {
        str(obx[3][0][0]): (str(obx[2]), str(obx[5]), str(obx[11]))
        for obx in message.segments("OBX")
    }


def test_the_message_is_an_oru_r01_without_a_patient():
    message = message_of(report(share(observed=0.5, corrected=0.42, ci_low=0.35, ci_high=0.5)))
    assert [str(segment[0]) for segment in message][:3] == ["MSH", "OBR", "NTE"]
    assert str(message.segment("MSH")[9]) == "ORU^R01^ORU_R01"
    assert str(message.segment("MSH")[12]) == "2.5.1"
    assert str(message.segment("MSH")[7]) == "20261207181936+0000"
    assert not any(str(segment[0]) == "PID" for segment in message)
    order = message.segment("OBR")
    assert str(order[3]) == "S-1^LeukoLens"
    assert str(order[4]).startswith("5909-7^")
    assert str(order[4]).endswith("^LN")
    assert str(order[25]) == "P"
    assert "not a diagnosis" in str(message.segment("NTE")[3])


def test_the_results_are_the_fhir_observations_in_percent_and_counts():
    found = results(
        message_of(report(share(observed=0.5, corrected=0.42, ci_low=0.35, ci_high=0.5), cells=3))
    )
    assert found["cells-in-sample"] == ("NM", "3", "P")
    assert found["cells-reviewed"] == ("NM", "0", "P")
    assert found["model-estimated-blast-like-share"] == ("NM", "42.0", "P")
    assert found["model-estimated-blast-like-share-ci-low"] == ("NM", "35.0", "P")
    assert found["model-estimated-blast-like-share-ci-high"] == ("NM", "50.0", "P")
    # No reviewed cell yet: the share has no value and says that it cannot be given.
    assert found["reviewer-confirmed-all-like-share"] == ("", "", "X")


def test_an_estimate_too_wide_to_read_has_no_value_and_a_note_that_says_why():
    wide = share(observed=0.5, corrected=0.42, ci_low=0.05, ci_high=0.9, too_wide=True)
    message = message_of(report(wide))
    assert results(message)["model-estimated-blast-like-share"] == ("", "", "X")
    notes = [str(note[3]) for note in message.segments("NTE")]
    assert any(note.startswith("not readable") for note in notes)


@pytest.mark.parametrize(("status", "code"), [("final", "F"), ("amended", "C")])
def test_a_signed_sample_names_its_signer_and_what_was_signed(status, code):
    signer = "Dr Zoë O'Brien | R&D ^ lab ~ \\ team"
    sample = report(share(note="no estimate"))
    sample.status = status
    sample.signed_off = SignOffRecord(
        id=1,
        by=signer,
        by_source="free_text",
        time=datetime(2026, 12, 7, 19, 0, tzinfo=UTC),
        comment="",
        cells=2,
        undecided_cells=2,
        content_sha256="a" * 64,
    )
    message = message_of(sample)
    order = message.segment("OBR")
    assert str(order[25]) == code
    # The separators and the non-ASCII letter are escaped, and read back as written.
    name = order[32][0][0][1]  # OBR-32.1.2: the whole name, as the family-name part
    assert message.unescape(str(name)) == signer
    assert len(order) == 33  # no field split off by the name's separators
    assert results(message)["signed-content-sha256"] == ("ST", "a" * 64, code)
    assert {status for _, _, status in results(message).values()} <= {code, "X"}


def test_times_are_utc_to_the_second():
    assert hl7_time(datetime(2026, 12, 7, 19, 19, 36, 236500, tzinfo=UTC)) == (
        "20261207191936+0000"
    )
