"""The card's unseen-patient rates as the reference, and the drift alert against them."""

import numpy as np

from app.core.card_reference import card_reference
from app.core.domain.predictions import ModelRef
from app.core.local_performance import CountRow, local_performance
from app.core.manifest import Evaluation, ModelManifest
from tests.conftest import write_mean_brightness_model


def unseen_evaluation(threshold: float = 0.5) -> Evaluation:
    return Evaluation(
        protocol="unseen subjects (a test set of other people): as served",
        metrics={
            "threshold": threshold,
            "cells_all": 81,
            "subjects_all_all": 17,
            "subjects_hem_all": 13,
            "sensitivity_all": 0.9,
            "sensitivity_all_low": 0.8,
            "sensitivity_all_high": 0.97,
            "specificity_all": 0.7,
            "specificity_all_low": 0.55,
            "specificity_all_high": 0.85,
            "balanced_accuracy_all": 0.8,
            "balanced_accuracy_all_low": 0.7,
            "balanced_accuracy_all_high": 0.88,
        },
    )


def card(tmp_path, *evaluations: Evaluation) -> ModelManifest:
    from app.core.manifest import load_manifest

    manifest = load_manifest(write_mean_brightness_model(tmp_path / "m"))
    return manifest.model_copy(update={"evaluations": list(evaluations)})


def test_the_reference_is_read_from_the_card(tmp_path):
    reference, note = card_reference(card(tmp_path, unseen_evaluation()))
    assert note == ""
    assert reference.sensitivity.model_dump() == {"value": 0.9, "low": 0.8, "high": 0.97}
    assert reference.specificity.low == 0.55
    assert reference.people == 30
    assert reference.cells == 81
    assert reference.source.startswith("model card m v1: unseen subjects")


def test_no_reference_without_an_unseen_evaluation_or_at_another_threshold(tmp_path):
    reference, note = card_reference(card(tmp_path))
    assert reference is None
    assert "no evaluation on patients it never saw" in note
    reference, note = card_reference(card(tmp_path, unseen_evaluation(threshold=0.3)))
    assert reference is None
    assert "another threshold" in note


def rows_at(sensitivity: float, specificity: float, samples: int = 8) -> list[CountRow]:
    """Samples of 100 ALL and 100 normal cells each, at these rates (with a little spread)."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(samples):
        tp = round(100 * min(1, max(0, sensitivity + rng.normal(0, 0.02))))
        tn = round(100 * min(1, max(0, specificity + rng.normal(0, 0.02))))
        rows.append(
            CountRow(
                sample_id=f"S-{index}",
                period="2026-01-01",
                reviewers=frozenset({"Dr A"}),
                tp=tp,
                fn=100 - tp,
                tn=tn,
                fp=100 - tn,
            )
        )
    return rows


def test_the_alert_is_set_below_the_cards_interval_and_cleared_inside_it(tmp_path):
    reference, _ = card_reference(card(tmp_path, unseen_evaluation()))
    model = ModelRef(id="m", version="1")
    low = local_performance(rows_at(0.6, 0.7), model=model, reference=reference)
    assert low.sensitivity.high < reference.sensitivity.low
    assert low.drift.alert is True
    assert low.drift.alert_rates == ["sensitivity", "balanced_accuracy"]
    assert (low.drift.sensitivity, low.drift.specificity) == ("below", "within")
    inside = local_performance(rows_at(0.9, 0.7), model=model, reference=reference)
    assert inside.drift.alert is False
    assert inside.drift.sensitivity == "within"
    above = local_performance(rows_at(0.9, 0.95), model=model, reference=reference)
    assert above.drift.specificity == "above"
    assert above.drift.alert is False


def test_a_few_samples_below_the_card_do_not_raise_the_alert(tmp_path):
    reference, _ = card_reference(card(tmp_path, unseen_evaluation()))
    few = local_performance(
        rows_at(0.5, 0.7, samples=3), model=ModelRef(id="m", version="1"), reference=reference
    )
    assert few.sensitivity.method == "wilson_cells"
    assert few.drift.sensitivity == "below"
    assert few.drift.alert is False
    assert "fewer than 5 samples" in few.drift.note


def test_a_rate_below_the_card_from_a_few_samples_raises_no_alert_among_many(tmp_path):
    """Eight samples, but ALL cells in only two of them: sensitivity below the card comes
    from two patients, too few to alert on; specificity within the card."""
    from dataclasses import replace

    reference, _ = card_reference(card(tmp_path, unseen_evaluation()))
    rows = [
        row if index < 2 else replace(row, tp=0, fn=0)
        for index, row in enumerate(rows_at(0.5, 0.7))
    ]
    figures = local_performance(rows, model=ModelRef(id="m", version="1"), reference=reference)
    assert figures.sensitivity.method == "wilson_cells"
    assert figures.specificity.method == "sample_resampling"
    assert figures.drift.sensitivity == "below"
    assert figures.drift.alert is False
    assert "fewer than 5 samples" in figures.drift.note
