from datetime import UTC, datetime

from app.core.domain.reviews import ReviewRecord
from app.core.domain.samples import SamplePrediction
from app.core.sample_headline import headline_text, sample_headline

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def cell(n: int) -> SamplePrediction:
    return SamplePrediction(
        time=NOW,
        request_id=f"r{n}",
        image_sha256=f"{n:064x}",
        model_id="m",
        model_version="1",
        probability_all=0.9,
        label="ALL",
        state="suggests_all",
        assessable=True,
    )


def decision(n: int, what: str, record_id: int) -> ReviewRecord:
    return ReviewRecord(
        id=record_id,
        time=NOW,
        request_id=f"r{n}",
        image_sha256=f"{n:064x}",
        sample_id="S-1",
        decision=what,
        reviewer="A",
    )


def test_the_headline_says_what_it_counts():
    """Once, "66.7% of 3 reviewed cells" beside "Reviewed 4 of 12" dropped a cell."""
    cells = [cell(n) for n in range(12)]
    decisions = [
        decision(0, "HEM", 1),
        decision(0, "ALL", 2),  # the latest counts
        decision(1, "ALL", 3),
        decision(2, "HEM", 4),
        decision(3, "not_assessable", 5),
        decision(99, "ALL", 6),  # not a cell of the sample
    ]
    headline = sample_headline(cells, decisions)
    assert headline.text == "66.7% of 3 assessable reviewed cells; 1 not assessable"
    assert headline.share == 2 / 3
    assert (headline.confirmed_all_like, headline.confirmed_normal) == (2, 1)
    assert (headline.assessable_reviewed, headline.not_assessable, headline.undecided) == (3, 1, 8)


def test_the_words_for_one_cell_and_for_none():
    assert headline_text(1.0, 1, 0) == "100.0% of 1 assessable reviewed cell"
    assert headline_text(None, 0, 2) == "no assessable reviewed cell yet; 2 not assessable"
