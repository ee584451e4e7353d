"""The one share a sample is read by, saying what it counts.

The headline is what reviewers confirmed: ALL-like cells among the cells they confirmed ALL-like
or normal, with the cells they marked not assessable named beside it ("66.7% of 3 assessable
reviewed cells; 1 not assessable"), never dropped in silence. The model's own figures (its
suggestions, the corrected estimate in `blast_share`) are named for what they are elsewhere.
The page writes the same words (static/js/share.js).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from app.core.domain.reviews import ReviewRecord
from app.core.domain.samples import SampleHeadline, SamplePrediction
from app.core.error_rates import percent

LABEL = "Reviewer-confirmed ALL-like share"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def headline_text(share: float | None, assessable_reviewed: int, not_assessable: int) -> str:
    text = (
        f"{percent(share)} of {plural(assessable_reviewed, 'assessable reviewed cell')}"
        if share is not None
        else "no assessable reviewed cell yet"
    )
    return f"{text}; {not_assessable} not assessable" if not_assessable else text


def sample_headline(
    predictions: Sequence[SamplePrediction], decisions: Sequence[ReviewRecord]
) -> SampleHeadline:
    """From each cell's latest decision (one image is one cell)."""
    cells = {p.image_sha256 for p in predictions}
    latest = {d.image_sha256: d.decision for d in decisions if d.image_sha256 in cells}
    tally = Counter(latest.values())
    assessable = tally["ALL"] + tally["HEM"]
    share = tally["ALL"] / assessable if assessable else None
    return SampleHeadline(
        share=share,
        confirmed_all_like=tally["ALL"],
        confirmed_normal=tally["HEM"],
        assessable_reviewed=assessable,
        not_assessable=tally["not_assessable"],
        undecided=len(cells) - len(latest),
        text=headline_text(share, assessable, tally["not_assessable"]),
    )
