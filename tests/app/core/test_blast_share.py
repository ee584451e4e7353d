import json
from pathlib import Path

import numpy as np
import pytest

from app.core.blast_share import (
    READABLE_WIDTH,
    CellCalls,
    HeldOutCounts,
    cell_calls,
    estimate_blast_share,
    held_out_counts,
    rogan_gladen,
    sample_blast_share,
    sample_score,
    shortest_interval,
)
from app.core.domain.reviews import ReviewRecord
from app.core.domain.samples import SamplePrediction
from app.core.manifest import ModelManifest

STORE = Path(__file__).parents[3] / "model_store"
# Sensitivity 0.80 from 800 of 1000 ALL cells, specificity 0.75 from 750 of 1000 normal cells.
COUNTS = HeldOutCounts(
    true_positives=800, false_negatives=200, true_negatives=750, false_positives=250, source="t"
)


def model_calls(cells: int, called_all: int) -> CellCalls:
    return CellCalls(
        cells=cells, model_called=cells, model_called_all=called_all, reviewed=0, reviewed_all=0
    )


def card(model_id: str) -> ModelManifest:
    text = (STORE / model_id / "manifest.json").read_text(encoding="utf-8")
    return ModelManifest.model_validate_json(text)


@pytest.mark.parametrize("model_id", ["convnext-atto-128-cell", "efficientnet-lite0-128-cell"])
def test_the_counts_are_the_cards_confusion_matrix_on_patients_it_never_saw(model_id):
    manifest = card(model_id)
    counts = held_out_counts(manifest)
    evaluation = next(e for e in manifest.evaluations if e.protocol.startswith("unseen subjects"))
    assert evaluation.metrics["threshold"] == manifest.threshold.value
    (tn, fp), (fn, tp) = evaluation.metrics["confusion_matrix"]
    assert (counts.true_positives, counts.false_negatives) == (tp, fn)
    assert (counts.true_negatives, counts.false_positives) == (tn, fp)
    assert counts.sensitivity == pytest.approx(evaluation.metrics["sensitivity_all"])
    assert counts.specificity == pytest.approx(evaluation.metrics["specificity_all"])
    assert counts.rates == "unseen_patients"
    assert counts.source.startswith(f"model card {model_id}")


def with_unseen_rates(manifest: ModelManifest, matrix: list[list[int]]) -> ModelManifest:
    from app.core.manifest import UNSEEN_SUBJECTS_PROTOCOL, Evaluation

    unseen = Evaluation(
        protocol=f"{UNSEEN_SUBJECTS_PROTOCOL}, out of fold: external people",
        metrics={"confusion_matrix": matrix, "threshold": manifest.threshold.value},
        per_subject_accuracy={"H90": 0.4, "H91": 0.6, "77": 0.9, "78": 0.7},
    )
    held_out = [e for e in manifest.evaluations if not e.protocol.startswith("unseen")]
    return manifest.model_copy(update={"evaluations": [*held_out, unseen]})


def test_the_rates_on_patients_never_seen_come_first_and_say_so():
    manifest = with_unseen_rates(card("convnext-atto-128-cell"), [[10, 10], [5, 20]])
    counts = held_out_counts(manifest)
    assert counts.rates == "unseen_patients"
    assert (counts.true_negatives, counts.false_positives) == (10, 10)
    assert counts.specificity == 0.5
    assert counts.source.endswith("out of fold: external people")
    # people outside the card's training subjects are read by C-NMC's naming (H<n>: healthy)
    assert sorted(counts.subject_specificities) == [0.4, 0.6]
    assert sorted(counts.subject_sensitivities) == [0.7, 0.9]
    share = estimate_blast_share(model_calls(100, 40), counts)
    assert share.rates == "unseen_patients"
    assert share.specificity == 0.5


def test_without_unseen_rates_the_held_out_ones_are_used_and_named():
    manifest = card("convnext-atto-128-cell")
    held_out = [e for e in manifest.evaluations if not e.protocol.startswith("unseen")]
    counts = held_out_counts(manifest.model_copy(update={"evaluations": held_out}))
    assert counts.rates == "held_out_training_subjects"
    # and unseen rates measured at another threshold are passed over for them
    moved = with_unseen_rates(manifest, [[10, 10], [5, 20]])
    moved.evaluations[-1].metrics["threshold"] = 0.123
    assert held_out_counts(moved).rates == "held_out_training_subjects"


def test_a_card_measured_at_another_threshold_gives_no_counts():
    manifest = card("convnext-atto-128-cell")
    moved = manifest.model_copy(
        update={"threshold": manifest.threshold.model_copy(update={"value": 0.5})}
    )
    assert held_out_counts(moved) is None


def test_rogan_gladen_undoes_the_expected_calls_and_clips():
    for truth in (0.0, 0.1, 0.5, 1.0):
        expected_calls = truth * 0.8 + (1 - truth) * 0.25
        assert rogan_gladen(expected_calls, 0.8, 0.75) == pytest.approx(truth)
    assert rogan_gladen(0.0, 0.8, 0.75) == 0.0  # below the false-positive rate
    assert rogan_gladen(1.0, 0.8, 0.75) == 1.0  # above the sensitivity
    with pytest.raises(ValueError, match="must exceed 1"):
        rogan_gladen(0.5, 0.5, 0.5)


def test_clipped_edges_keep_the_interval_inside_zero_and_one_and_around_the_estimate():
    none_called = estimate_blast_share(model_calls(40, 0), COUNTS)
    assert none_called.observed == 0.0
    assert none_called.corrected == 0.0
    assert none_called.ci_low == 0.0
    assert 0.0 < none_called.ci_high < 0.3
    all_called = estimate_blast_share(model_calls(40, 40), COUNTS)
    assert all_called.corrected == 1.0
    assert all_called.ci_high == 1.0
    assert 0.7 < all_called.ci_low < 1.0
    at_false_positive_rate = estimate_blast_share(model_calls(40, 10), COUNTS)
    assert at_false_positive_rate.corrected == pytest.approx(0.0)
    assert at_false_positive_rate.ci_low == 0.0


def test_no_assessable_cell_gives_no_share_and_says_why():
    share = estimate_blast_share(
        CellCalls(cells=3, model_called=0, model_called_all=0, reviewed=0, reviewed_all=0), COUNTS
    )
    assert share.n_cells == 3
    assert share.n_assessable == 0
    assert share.observed is share.corrected is share.ci_low is share.ci_high is None
    assert "no assessable cell" in share.note


def test_without_held_out_counts_the_share_is_observed_only():
    share = estimate_blast_share(model_calls(20, 5), None)
    assert share.observed == 0.25
    assert share.corrected is None
    assert share.sensitivity is None
    assert "uncorrected" in share.note


def test_the_estimate_is_deterministic_and_narrows_with_more_cells():
    first = estimate_blast_share(model_calls(50, 25), COUNTS)
    assert estimate_blast_share(model_calls(50, 25), COUNTS) == first
    larger = estimate_blast_share(model_calls(500, 250), COUNTS)
    assert larger.corrected == pytest.approx(first.corrected)
    assert larger.interval_width < first.interval_width


def test_a_wide_interval_says_roughly_how_many_more_cells_narrow_it():
    small = estimate_blast_share(model_calls(12, 6), COUNTS)
    assert small.too_wide
    assert small.interval_width > READABLE_WIDTH
    assert small.more_cells_needed is not None
    bigger = small.n_assessable + small.more_cells_needed
    grown = estimate_blast_share(model_calls(bigger, round(bigger / 2)), COUNTS)
    assert grown.interval_width <= READABLE_WIDTH + 0.05  # roughly: a delta-method figure
    assert not estimate_blast_share(model_calls(400, 200), COUNTS).too_wide


def test_a_poorly_known_model_cannot_be_narrowed_by_more_cells():
    few = HeldOutCounts(
        true_positives=6, false_negatives=4, true_negatives=6, false_positives=4, source="t"
    )
    share = estimate_blast_share(model_calls(1000, 500), few)
    assert share.too_wide
    assert share.more_cells_needed is None


def test_interval_coverage_is_near_95_percent_on_simulated_samples():
    """Samples drawn with the card's sensitivity and specificity at known blast shares."""
    rng = np.random.default_rng(7)
    covered = trials = 0
    for cells in (20, 100):
        for truth in (0.0, 0.05, 0.2, 0.5, 1.0):
            for trial in range(30):
                blasts = rng.random(cells) < truth
                called = np.where(
                    blasts,
                    rng.random(cells) < COUNTS.sensitivity,
                    rng.random(cells) >= COUNTS.specificity,
                )
                share = estimate_blast_share(
                    model_calls(cells, int(called.sum())), COUNTS, draws=600, seed=trial
                )
                covered += share.ci_low <= truth <= share.ci_high
                trials += 1
    assert 0.9 <= covered / trials <= 0.99


def test_reviewed_cells_count_as_decided_and_are_not_corrected():
    calls = CellCalls(cells=10, model_called=0, model_called_all=0, reviewed=10, reviewed_all=3)
    share = estimate_blast_share(calls, None)
    assert share.observed == share.corrected == 0.3
    assert share.n_reviewed == 10
    assert share.ci_low < 0.3 < share.ci_high


def prediction(sha: str, label: str, *, assessable: bool = True, version: str = "1"):
    return SamplePrediction(
        time=0.0,
        request_id="r",
        image_sha256=sha,
        model_id="convnext-atto-128-cell",
        model_version=version,
        probability_all=0.9 if label == "ALL" else 0.2,
        label=label,
        state="not_assessable" if not assessable else "suggests_all",
        assessable=assessable,
    )


def decision(sha: str, decided: str, record_id: int) -> ReviewRecord:
    return ReviewRecord(
        id=record_id,
        time=0.0,
        request_id="r",
        image_sha256=sha,
        sample_id="S",
        decision=decided,
        reviewer="Dr A",
    )


def test_the_latest_decision_replaces_the_models_call():
    predictions = [
        prediction("a" * 64, "ALL"),
        prediction("b" * 64, "ALL"),
        prediction("c" * 64, "HEM", assessable=False),
        prediction("d" * 64, "HEM"),
        prediction("e" * 64, "HEM", assessable=False),
    ]
    decisions = [
        decision("a" * 64, "ALL", 1),
        decision("a" * 64, "HEM", 2),  # the latest counts
        decision("b" * 64, "not_assessable", 3),  # dropped
        decision("c" * 64, "ALL", 4),  # a reviewer can count a cell the checks doubted
    ]
    calls = cell_calls(predictions, decisions)
    assert calls == CellCalls(
        cells=5, model_called=1, model_called_all=0, reviewed=2, reviewed_all=1
    )
    assert sample_score(predictions) == pytest.approx((0.9 + 0.9 + 0.2) / 3)


def test_the_sample_is_corrected_with_the_card_of_the_model_that_scored_it():
    manifest = card("convnext-atto-128-cell")
    predictions = [
        prediction(f"{i:064x}", "ALL" if i % 2 else "HEM", version=manifest.version)
        for i in range(30)
    ]
    share = sample_blast_share(predictions, [], lambda model_id: manifest)
    assert share.sensitivity == pytest.approx(held_out_counts(manifest).sensitivity)
    assert share.corrected is not None
    stale = sample_blast_share(
        [prediction("a" * 64, "ALL", version="old")], [], lambda model_id: manifest
    )
    assert stale.corrected is None
    assert "do not apply" in stale.note
    gone = sample_blast_share(predictions, [], lambda model_id: None)
    assert gone.corrected is None


def test_the_share_serialises_as_plain_json():
    share = estimate_blast_share(model_calls(30, 12), COUNTS)
    body = json.loads(share.model_dump_json())
    for field in ("observed", "corrected", "ci_low", "ci_high", "n_assessable", "n_cells"):
        assert field in body


def test_the_shortest_interval_holds_the_level():
    samples = np.linspace(0, 1, 1001)
    low, high = shortest_interval(samples, 0.95)
    assert high - low == pytest.approx(0.95, abs=0.002)


def test_the_card_gives_each_unseen_subjects_rate_by_class():
    manifest = card("convnext-atto-128-cell")
    counts = held_out_counts(manifest)
    evaluation = next(e for e in manifest.evaluations if e.protocol.startswith("unseen subjects"))
    hem = [s for s in evaluation.per_subject_accuracy if s.startswith("H")]
    assert len(hem) == 18  # the healthy donors of C-NMC_external
    assert sorted(counts.subject_specificities) == sorted(
        evaluation.per_subject_accuracy[s] for s in hem
    )
    assert len(counts.subject_sensitivities) + len(hem) == len(evaluation.per_subject_accuracy)


def test_patients_differing_from_the_pool_widen_the_interval_beyond_what_cells_can_narrow():
    spread = HeldOutCounts(
        true_positives=800,
        false_negatives=200,
        true_negatives=750,
        false_positives=250,
        source="t",
        subject_sensitivities=(0.95, 0.6, 0.85),
        subject_specificities=(0.55, 0.9, 0.8),
    )
    pooled = estimate_blast_share(model_calls(200, 100), COUNTS)
    patient = estimate_blast_share(model_calls(200, 100), spread)
    assert patient.corrected == pytest.approx(pooled.corrected)
    assert patient.interval_width > pooled.interval_width + 0.2
    assert patient.too_wide
    assert patient.more_cells_needed is None  # the subjects' spread, not the cells, limits it
