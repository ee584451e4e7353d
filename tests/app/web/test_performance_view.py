"""Plot geometry and the words about narrowing, from the figures alone."""

from app.core.card_reference import card_reference
from app.core.domain.predictions import ModelRef
from app.core.local_performance import CountRow, local_performance
from app.web.performance_view import (
    BOTTOM,
    HEIGHT,
    TOP,
    against_card_words,
    narrowing_words,
    page_view,
    y_of,
)
from tests.app.core.test_card_reference import card, unseen_evaluation


def test_points_sit_at_their_rates_and_the_band_at_the_cards(tmp_path):
    reference, _ = card_reference(card(tmp_path, unseen_evaluation()))
    rows = [
        CountRow(
            sample_id=f"S{i}",
            period=f"2026-0{1 + i % 3}-01",
            reviewers=frozenset({"A"}),
            tp=8,
            fn=2,
            tn=6,
            fp=4,
        )
        for i in range(18)
    ]
    figures = local_performance(rows, model=ModelRef(id="m", version="1"), reference=reference)
    view = page_view(figures)
    sensitivity = view.plots[0]
    assert [p.label for p in sensitivity.points] == ["2026-01", "2026-02", "2026-03"]
    assert all(abs(p.y - y_of(0.8)) < 1e-9 for p in sensitivity.points)
    assert sensitivity.band == (y_of(0.97), y_of(0.8), y_of(0.9))
    assert y_of(0) == HEIGHT - BOTTOM
    assert y_of(1) == TOP > 0  # 100%'s tick label and a dot there are drawn whole
    assert "the shaded band" in sensitivity.summary
    assert not any(p.wilson for p in sensitivity.points)  # 6 samples per month


def test_narrowing_words():
    from app.core.domain.performance import Rate

    rate = Rate(
        value=0.8,
        low=0.7,
        high=0.9,
        cells=100,
        samples=10,
        method="sample_resampling",
        more_samples_for_0_05=30,
    )
    assert narrowing_words("Sensitivity", rate) == (
        "Sensitivity: about 30 more reviewed samples like these would narrow its interval to "
        "±5 percentage points."
    )
    done = rate.model_copy(update={"more_samples_for_0_05": 0})
    assert "already within" in narrowing_words("Sensitivity", done)


def test_a_value_outside_the_cards_range_says_whether_the_ranges_can_be_told_apart():
    from app.core.domain.performance import Rate, ReferenceRate

    card = ReferenceRate(value=0.9, low=0.8, high=0.97)

    def rate(value: float, low: float, high: float) -> Rate:
        return Rate(
            value=value,
            low=low,
            high=high,
            cells=10,
            samples=3,
            method="wilson_cells",
            more_samples_for_0_05=None,
        )

    # 3 samples: 100% (51-100%) lies above the card's 80-97% but its range overlaps it.
    assert against_card_words(rate(1.0, 0.51, 1.0), card, "above") == (
        "above its range, but the two ranges overlap: not told apart yet"
    )
    assert against_card_words(rate(0.5, 0.4, 0.6), card, "below") == "below its range"
    assert against_card_words(rate(0.85, 0.8, 0.9), card, "within") == "within its range"
    assert against_card_words(rate(0.85, 0.8, 0.9), None, None) == "\N{EN DASH}"
