import json
import shutil

import numpy as np
import pytest

from tests.conftest import write_mean_brightness_model
from training.cli import main
from training.data.dataset_index import DatasetError
from training.evaluation.external_evaluation import (
    PART_ALL,
    PART_PRELIM,
    PART_TRAINING_FOLDS,
    external_report,
    index_external,
    paired_comparison,
)
from training.evaluation.external_report_writing import read_report
from training.evaluation.scorers import Scores
from training.fit.artifacts import EXTERNAL_REPORT
from training.metrics.subject_resampling import subject_resamples


def test_reads_both_parts_matches_by_stem_and_counts_missing_rows(external_root):
    data = index_external(external_root)
    assert len(data.part(PART_TRAINING_FOLDS)) == 12
    assert len(data.part(PART_PRELIM)) == 6
    assert len(data.part(PART_ALL)) == 18
    assert data.duplicates_removed == 1  # the cell present in both parts is kept once
    assert (data.prelim_listed, data.prelim_missing) == (10, 3)
    prelim_subjects = {data.images[i].subject for i in data.part(PART_PRELIM)}
    assert prelim_subjects == {"60", "H70"}
    assert all(data.images[i].path.suffix == ".png" for i in data.part(PART_PRELIM))


def test_reads_the_official_nested_layout_in_bmp(external_root, tmp_path):
    official = tmp_path / "official"
    inner = official / "C-NMC_test_prelim_phase_data" / "C-NMC_test_prelim_phase_data"
    inner.mkdir(parents=True)
    import cv2

    for png in (external_root / "C-NMC_test_prelim_phase_data").glob("*.png"):
        cv2.imwrite(str(inner / f"{png.stem}.bmp"), cv2.imread(str(png)))
    shutil.copy(
        external_root / "C-NMC_test_prelim_phase_data_labels.csv",
        official / "C-NMC_test_prelim_phase_data",
    )
    data = index_external(official)
    assert len(data.images) == 7  # no training-fold part here, so nothing to de-duplicate
    assert {image.path.suffix for image in data.images} == {".bmp"}


def test_a_root_with_neither_part_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="found neither"):
        index_external(tmp_path)


def test_perfect_and_reversed_scorers_and_a_self_comparison(external_root):
    data = index_external(external_root)
    labels = np.asarray([image.label for image in data.images], dtype=float)
    perfect = Scores("perfect", labels * 0.8 + 0.1, threshold=0.5)
    reversed_ = Scores("reversed", 1 - perfect.values, threshold=0.5)
    report = external_report(data, [perfect, reversed_], root=external_root, resamples=100)
    best, worst = report.scorer("perfect"), report.scorer("reversed")
    for part in (PART_ALL, PART_TRAINING_FOLDS, PART_PRELIM):
        figures = best.parts[part]
        assert (figures.roc_auc.value, figures.roc_auc.low, figures.roc_auc.high) == (1, 1, 1)
        assert figures.balanced_accuracy.value == figures.sensitivity.value == 1.0
        assert worst.parts[part].roc_auc.value == 0.0
        assert worst.parts[part].specificity.value == 0.0
    assert best.parts[PART_PRELIM].subjects_all == 1
    assert best.parts[PART_PRELIM].subjects_hem == 1
    assert {row.subject for row in best.per_subject} == {"60", "61", "62", "H70", "H71", "H72"}
    assert all(row.accuracy == 1.0 for row in best.per_subject)
    draws = {
        PART_ALL: subject_resamples([i.subject for i in data.images], labels.astype(int), 100, 0)
    }
    itself = paired_comparison(data, perfect, perfect, draws).roc_auc_difference[PART_ALL]
    assert (itself.value, itself.low, itself.high) == (0.0, 0.0, 0.0)


def test_intervals_hold_the_point_estimate(external_root):
    data = index_external(external_root)
    noisy = Scores("noisy", np.random.default_rng(3).random(len(data.images)), threshold=0.5)
    report = external_report(data, [noisy], root=external_root, resamples=300, seed=2)
    auc = report.scorer("noisy").parts[PART_ALL].roc_auc
    assert auc.low <= auc.value <= auc.high
    assert auc.high - auc.low > 0.05  # 6 subjects cannot pin an AUC down


def test_the_command_writes_json_and_markdown(external_root, tmp_path, capsys):
    model_dir = write_mean_brightness_model(tmp_path / "brightness")
    other = write_mean_brightness_model(tmp_path / "other", input_size=16)
    out = tmp_path / "report"
    args = ["external", "--model", str(model_dir), "--data", str(external_root)]
    assert main([*args, "--against", str(other), "--resamples", "50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "preliminary-test part" in printed
    assert "present 7 of 10" in printed
    assert "baseline: cell area" in printed
    report = read_report(out)
    assert report is not None
    assert json.loads((out / EXTERNAL_REPORT).read_text())["resamples"] == 50
    assert [s.name for s in report.scorers][:2] == ["brightness v1", "other v1"]
    assert set(report.paired[0].roc_auc_difference) == {PART_ALL, PART_TRAINING_FOLDS, PART_PRELIM}
