from pathlib import Path

import numpy as np
import pytest

from training.data.dataset_index import CellImage, subject_label
from training.data.predictions import Predictions
from training.evaluation.population_report import (
    EXTERNAL,
    FIXED_THRESHOLD,
    cv_population_report,
    markdown_table,
    population_report,
)


def cells(population: str, subjects: list[str], per_person: int) -> list[CellImage]:
    return [
        CellImage(Path(f"{s}_{n}.png"), s, subject_label(s), population=population)
        for s in subjects
        for n in range(per_person)
    ]


def cohort() -> tuple[list[CellImage], np.ndarray]:
    """fold1 and external-folds perfectly separated; external-prelim exactly reversed."""
    images = [
        *cells("fold1", ["1", "2", "H1", "H2"], 4),
        *cells("external-folds", ["3", "4", "H3", "H4"], 2),
        *cells("external-prelim", ["5", "6", "H5", "H6"], 1),
    ]
    scores = []
    for image in images:
        right = 0.9 if image.label == 1 else 0.1
        scores.append(1 - right if image.population == "external-prelim" else right)
    return images, np.asarray(scores)


def test_each_population_is_reported_on_its_own_and_externals_together():
    images, scores = cohort()
    report = population_report("c", "out-of-fold", images, scores, 0.5, resamples=200)
    assert list(report.populations) == ["fold1", "external-folds", "external-prelim", EXTERNAL]
    fold1, folds, prelim = (report.populations[p] for p in list(report.populations)[:3])
    assert (fold1.cells, fold1.people_all, fold1.people_hem) == (16, 2, 2)
    assert fold1.roc_auc.value == 1.0
    assert folds.subject_roc_auc.value == 1.0
    assert prelim.roc_auc.value == 0.0
    assert prelim.confusion_matrix == [[0, 2], [2, 0]]
    assert prelim.per_person == {"5": 0.0, "6": 0.0, "H5": 0.0, "H6": 0.0}
    assert report.populations[EXTERNAL].cells == 8 + 4
    assert report.rule_score() == pytest.approx(0.5)  # mean of 1.0 and 0.0


def test_intervals_resample_whole_people():
    images, scores = cohort()
    rng = np.random.default_rng(0)
    noisy = np.clip(scores + rng.normal(0, 0.4, len(scores)), 0, 1)
    report = population_report("c", "out-of-fold", images, noisy, 0.5, resamples=300)
    for figures in report.populations.values():
        for interval in (figures.roc_auc, figures.subject_roc_auc, figures.balanced_accuracy):
            assert interval is not None
            assert interval.low <= interval.high
            assert 0.0 <= interval.low <= 1.0
    table = markdown_table([report])
    assert "external-prelim" in table
    assert f"**{report.rule_score():.3f}**" in table


def test_a_baseline_without_threshold_has_no_error_rates():
    images, scores = cohort()
    report = population_report("area", "baseline", images, scores, None, resamples=50)
    assert all(f.balanced_accuracy is None for f in report.populations.values())
    assert all(f.confusion_matrix is None for f in report.populations.values())


def test_cv_report_reads_out_of_fold_predictions_and_writes_beside_them(tmp_path):
    images, scores = cohort()
    logits = np.log(scores / (1 - scores))
    Predictions(tuple(images), logits, scores).write_csv(tmp_path / "oof_predictions.csv")
    report = cv_population_report(tmp_path, resamples=50)
    assert report.threshold == FIXED_THRESHOLD
    assert (tmp_path / "populations.json").is_file()
    assert report.populations["fold1"].roc_auc.value == 1.0


def test_cv_report_refuses_predictions_without_populations(tmp_path):
    images, scores = cohort()
    plain = tuple(CellImage(i.path, i.subject, i.label) for i in images)
    Predictions(plain, scores, scores).write_csv(tmp_path / "oof_predictions.csv")
    with pytest.raises(ValueError, match="no population"):
        cv_population_report(tmp_path, resamples=10)


def test_a_blend_averages_two_cvs_logits_cell_by_cell(tmp_path):
    from training.evaluation.population_report import blended_report

    images, scores = cohort()
    logits = np.log(scores / (1 - scores))
    for name, values in (("a", logits), ("b", -logits)):  # b is exactly reversed
        (tmp_path / name).mkdir()
        Predictions(tuple(images), values, 1 / (1 + np.exp(-values))).write_csv(
            tmp_path / name / "oof_predictions.csv"
        )
    blend = blended_report(tmp_path / "a", tmp_path / "b", resamples=20)
    # opposite logits cancel: every cell at 0.5, no ranking left
    assert blend.populations["fold1"].roc_auc.value == 0.5
    assert blend.populations["fold1"].cells == 16
