"""What a sample tells a laboratory information system, whatever the message format: the
counts, the reviewer-confirmed share, the model's corrected estimate, when it was issued and
the one-line conclusion. FHIR (`fhir_report.py`) and HL7 v2 (`hl7v2_report.py`) both say
exactly this, so the two never disagree on what a sample's result is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.domain.samples import BlastShare, SampleReport
from app.core.sample_headline import LABEL

# The product's own codes for what no LOINC code says without claiming a blast count.
SHARE_CODE = "reviewer-confirmed-all-like-share"
ESTIMATE_CODE = "model-estimated-blast-like-share"
ESTIMATE_TEXT = "Model-estimated share of blast-like cells, corrected for its error rates"
REPORT_LOINC = "5909-7"
REPORT_LOINC_TEXT = "Blood smear finding [Identifier] in Blood by Light microscopy"
REPORT_TEXT = (
    "LeukoLens review of white-blood-cell images, ALL-like (blast-like) versus normal cells: "
    "a research and screening aid, not a diagnosis"
)
SHARE_TEXT = LABEL


@dataclass(frozen=True)
class ModelDevice:
    """A model that scored the sample's cells, as the lab's system should record it."""

    id: str
    version: str
    name: str
    card_sha256: str


@dataclass(frozen=True)
class CellCount:
    code: str
    text: str
    value: int


def cell_counts(report: SampleReport) -> list[CellCount]:
    headline = report.headline
    assert headline is not None
    reviewed = headline.assessable_reviewed + headline.not_assessable
    counted = [
        ("cells-in-sample", "Cells in the sample (each image once)", len(report.predictions)),
        ("cells-reviewed", "Cells reviewed", reviewed),
        ("cells-confirmed-all-like", "Cells confirmed ALL-like", headline.confirmed_all_like),
        ("cells-confirmed-normal", "Cells confirmed normal", headline.confirmed_normal),
        ("cells-not-assessable", "Cells marked not assessable", headline.not_assessable),
    ]
    return [CellCount(code, text, value) for code, text, value in counted]


def conclusion(report: SampleReport) -> str:
    headline = report.headline
    assert headline is not None
    cells = len(report.predictions)
    left = f", {headline.undecided} undecided" if headline.undecided else ""
    return (
        f"{LABEL}: {headline.text} ({cells} cell{'' if cells == 1 else 's'} in the sample"
        f"{left}); a research and screening aid, not a diagnosis."
    )


def issued(report: SampleReport) -> datetime | None:
    """When this version of the result was made available: its latest sign-off when final,
    its latest amendment when amended, its latest record while preliminary."""
    if report.status == "final" and report.signed_off is not None:
        return report.signed_off.time
    if report.status == "amended" and report.amendments:
        return report.amendments[-1].time
    times = [p.time for p in report.predictions] + [d.time for d in report.decisions]
    times += [w.time for w in report.withdrawals]
    return max(times, default=None)


def readable_estimate(share: BlastShare | None) -> float | None:
    """The corrected share, only where its interval is narrow enough to read."""
    if share is not None and share.corrected is not None and not share.too_wide:
        return share.corrected
    return None


def estimate_interval(share: BlastShare | None) -> tuple[float, float] | None:
    if share is not None and share.ci_low is not None and share.ci_high is not None:
        return share.ci_low, share.ci_high
    return None


def why_no_estimate(share: BlastShare | None) -> str:
    if share is not None and share.too_wide:
        return (
            f"not readable: its 95% interval is wider than {100 * share.readable_width:.0f} "
            "percentage points"
        )
    note = share.note if share is not None and share.note else ""
    return note or "no estimate: no assessable cell"


def estimate_method(devices: Sequence[ModelDevice]) -> str:
    models = ", ".join(f"{d.id} version {d.version}" for d in devices) or "(none)"
    return (
        f"LeukoLens model {models}: the cells it called, corrected for its error rates on "
        "people it never saw (Rogan-Gladen), 95% interval by Monte Carlo"
    )
