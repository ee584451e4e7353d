from pathlib import Path

import numpy as np
import pytest

from app.core.classifier import sigmoid
from training.data.dataset_index import CellImage, subject_label
from training.data.predictions import Predictions
from training.evaluation.paired_difference import markdown_table, paired_difference
from training.fit.artifacts import CvDir
from training.metrics.subject_resampling import roc_auc


def cohort() -> list[CellImage]:
    people = {
        "fold1": ["1", "2", "H1"],
        "external-folds": ["3", "4", "5", "6", "H3", "H4", "H5", "H6"],
        "external-prelim": ["7", "8", "9", "H7", "H8", "H9"],
    }
    return [
        CellImage(Path(f"{s}_{n}.png"), s, subject_label(s), population=population)
        for population, subjects in people.items()
        for s in subjects
        for n in range(3)
    ]


def write_cv(path: Path, images: list[CellImage], logits: np.ndarray) -> Path:
    path.mkdir()
    CvDir(path).write_out_of_fold(Predictions(tuple(images), logits, sigmoid(logits)))
    return path


def test_a_clearly_better_candidate_clears_and_the_value_is_the_plain_difference(tmp_path):
    images = cohort()
    rng = np.random.default_rng(0)
    labels = np.asarray([image.label for image in images])
    better = np.where(labels == 1, 2.0, -2.0) + rng.normal(0, 0.5, len(images))
    worse = rng.normal(0, 1, len(images))
    candidate = write_cv(tmp_path / "better", images, better)
    reference = write_cv(tmp_path / "reference", images, worse)
    difference = paired_difference(candidate, reference, resamples=300)
    expected = {}
    for population in ("external-folds", "external-prelim"):
        members = [i for i, image in enumerate(images) if image.population == population]
        expected[population] = roc_auc(labels[members], better[members]) - roc_auc(
            labels[members], worse[members]
        )
        assert difference.populations[population].value == pytest.approx(expected[population])
    assert difference.rule_score.value == pytest.approx(np.mean(list(expected.values())))
    assert difference.rule_score.low > 0
    assert difference.clears()
    assert difference.cells == len(images)
    assert "| better | reference |" in markdown_table([difference])

    against_itself = paired_difference(reference, reference, resamples=300)
    assert against_itself.rule_score.value == 0.0
    assert (against_itself.rule_score.low, against_itself.rule_score.high) == (0.0, 0.0)
    assert not against_itself.clears()


def test_a_noisy_gain_on_few_people_does_not_clear(tmp_path):
    images = cohort()
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, len(images))
    candidate = reference + rng.normal(0, 0.8, len(images))
    result = paired_difference(
        write_cv(tmp_path / "candidate", images, candidate),
        write_cv(tmp_path / "reference", images, reference),
        resamples=300,
    )
    assert result.rule_score.low < 0 < result.rule_score.high
    assert not result.clears()


def test_only_cells_both_scored_count_and_each_rule_population_is_needed(tmp_path):
    images = cohort()
    logits = np.linspace(-1, 1, len(images))
    subsample = [i for i, image in enumerate(images) if not image.path.stem.endswith("_2")]
    candidate = write_cv(tmp_path / "subsample", [images[i] for i in subsample], logits[subsample])
    reference = write_cv(tmp_path / "all", images, logits)
    assert paired_difference(candidate, reference, resamples=50).cells == len(subsample)

    fold1_only = [i for i, image in enumerate(images) if image.population == "fold1"]
    lonely = write_cv(tmp_path / "fold1", [images[i] for i in fold1_only], logits[fold1_only])
    with pytest.raises(ValueError, match="share no cell of external-folds, external-prelim"):
        paired_difference(lonely, reference, resamples=50)
