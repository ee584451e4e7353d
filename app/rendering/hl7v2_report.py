"""A sample as an HL7 v2.5.1 ORU^R01 message, for laboratory information systems that take
HL7 v2 rather than FHIR: the same content as the FHIR Bundle (`lab_results.py` says what it is).

One OBR for the sample (its id as the filler order number, the LOINC code of a blood smear
review, result status P, F or C for preliminary, final or amended, the signer as principal
result interpreter), an NTE with the conclusion, and one OBX per result: the cell counts, the
reviewer-confirmed share, the model's corrected estimate with its 95% interval (or why it is not
readable) and the SHA-256 of what was signed. There is no PID segment: the server knows a
sample by its lab number only, never a patient. Text is escaped by the `hl7` package (separators
as \\F\\, \\S\\, ...; anything outside printable ASCII as \\Xhh\\), so the message is plain ASCII.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import hl7

from app.core.domain.samples import SampleReport, SampleStatus
from app.rendering.lab_results import (
    ESTIMATE_CODE,
    ESTIMATE_TEXT,
    REPORT_LOINC,
    REPORT_LOINC_TEXT,
    SHARE_CODE,
    SHARE_TEXT,
    ModelDevice,
    cell_counts,
    conclusion,
    estimate_interval,
    estimate_method,
    issued,
    readable_estimate,
    why_no_estimate,
)

MEDIA_TYPE = "x-application/hl7-v2+er7"
VERSION = "2.5.1"
APPLICATION = "LeukoLens"
LOCAL_CODES = "L"  # HL7 table 0396: a local code, the product's own (lab_results.py)
PERCENT = "%^percent^UCUM"
RESULT_STATUS: dict[SampleStatus, str] = {"preliminary": "P", "final": "F", "amended": "C"}
NO_RESULT = "X"  # table 0085: results cannot be obtained for this observation
SEGMENT_END = "\r"
MSH_SEPARATORS = "MSH|^~\\&|"


def hl7_time(moment: datetime) -> str:
    """HL7's DTM in UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def _percent(share: float) -> str:
    return f"{100 * share:.1f}"


class _Segments:
    """Segments in order, each a list of fields; text goes through `text()` to be escaped."""

    def __init__(self) -> None:
        self._escaper = hl7.parse(MSH_SEPARATORS)
        self.lines: list[list[str]] = []

    def text(self, value: str) -> str:
        """Escaped for ER7; a line break becomes HL7's own (\\.br\\)."""
        return str(self._escaper.escape(value.replace("\r\n", "\r").replace("\n", "\r")))

    def add(self, name: str, *fields: str) -> None:
        self.lines.append([name, *fields])

    def coded(self, code: str, text: str, system: str = LOCAL_CODES) -> str:
        return f"{self.text(code)}^{self.text(text)}^{system}"

    def note(self, comment: str) -> None:
        """An NTE under the segment before it, numbered within that segment's notes."""
        notes = 0
        while notes < len(self.lines) and self.lines[-1 - notes][0] == "NTE":
            notes += 1
        self.add("NTE", str(notes + 1), "L", self.text(comment))

    def result(
        self, code: str, text: str, value: str | None, status: str, *, units: str = "", kind: str
    ) -> None:
        """One OBX: a value of `kind` (NM, ST), or none, marked as results not obtained."""
        number = sum(1 for line in self.lines if line[0] == "OBX") + 1
        fields = [""] * 11
        fields[0] = str(number)
        fields[1] = kind if value is not None else ""
        fields[2] = self.coded(code, text)
        fields[4] = value if value is not None else ""
        fields[5] = units if value is not None else ""
        fields[10] = status if value is not None else NO_RESULT
        self.add("OBX", *fields)

    def er7(self) -> str:
        rendered = ["|".join(fields).rstrip("|") for fields in self.lines]
        return "".join(line + SEGMENT_END for line in rendered)


def sample_oru_r01(
    report: SampleReport,
    devices: Sequence[ModelDevice],
    *,
    now: datetime,
    control_id: str,
) -> str:
    headline = report.headline
    assert headline is not None
    status = RESULT_STATUS[report.status]
    segments = _Segments()
    header = [""] * 11
    header[0] = APPLICATION  # MSH-3
    header[4] = hl7_time(now)  # MSH-7
    header[6] = "ORU^R01^ORU_R01"  # MSH-9
    header[7] = segments.text(control_id)  # MSH-10
    header[8] = "P"  # MSH-11
    header[9] = VERSION  # MSH-12
    segments.lines.append(["MSH", "^~\\&", *header])
    observed = min((p.time for p in report.predictions), default=None)
    when = issued(report)
    order = [""] * 32
    order[0] = "1"  # OBR-1
    order[2] = f"{segments.text(report.sample_id)}^{APPLICATION}"  # OBR-3, the filler's id
    order[3] = segments.coded(REPORT_LOINC, REPORT_LOINC_TEXT, "LN")  # OBR-4
    order[6] = hl7_time(observed) if observed else ""  # OBR-7, the first cell scored
    order[21] = hl7_time(when) if when else ""  # OBR-22, this version of the result
    order[23] = "HM"  # OBR-24, hematology
    order[24] = status  # OBR-25
    if report.signed_off is not None:
        order[31] = f"&{segments.text(report.signed_off.by)}"  # OBR-32, the signer's name
    segments.add("OBR", *order)
    segments.note(conclusion(report))
    for count in cell_counts(report):
        segments.result(count.code, count.text, str(count.value), status, kind="NM")
    share = None if headline.share is None else _percent(headline.share)
    segments.result(SHARE_CODE, SHARE_TEXT, share, status, units=PERCENT, kind="NM")
    if share is None:
        segments.note(headline.text)
    estimate = readable_estimate(report.blast_share)
    value = None if estimate is None else _percent(estimate)
    segments.result(ESTIMATE_CODE, ESTIMATE_TEXT, value, status, units=PERCENT, kind="NM")
    segments.note(estimate_method(devices))
    if value is None:
        segments.note(why_no_estimate(report.blast_share))
    for device in devices:
        segments.note(
            f"Model {device.id} version {device.version} ({device.name}), "
            f"card SHA-256 {device.card_sha256}"
        )
    interval = estimate_interval(report.blast_share)
    if interval is not None:
        for end, bound in zip(("low", "high"), interval, strict=True):
            segments.result(
                f"{ESTIMATE_CODE}-ci-{end}",
                f"{ESTIMATE_TEXT}: 95% interval, {end} end",
                _percent(bound),
                status,
                units=PERCENT,
                kind="NM",
            )
    if report.signed_off is not None:
        segments.result(
            "signed-content-sha256",
            "SHA-256 of the signed content",
            report.signed_off.content_sha256,
            status,
            kind="ST",
        )
    return segments.er7()
