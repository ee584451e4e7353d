import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.predict_cli import main as predict_main
from app.service.model_registry import record_model
from tests.conftest import write_mean_brightness_model
from training.cli import main
from training.dataset_index import LABEL_ALL, DatasetError, read_image
from training.external_evaluation import (
    EXTERNAL_REPORT,
    PART_ALL,
    PART_PRELIM,
    PART_TRAINING_FOLDS,
    Scores,
    cell_appearance_baselines,
    evaluate_scores,
    external_report,
    index_external,
    paired_comparison,
    read_report,
    roc_auc,
    score_model_dir,
    subject_resamples,
)


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


def test_fast_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        labels = rng.integers(0, 2, 40)
        scores = np.round(rng.random(40), 1)  # many ties
        if len(set(labels)) == 2:
            assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(roc_auc(np.ones(5, int), np.arange(5.0)))


def test_resamples_draw_whole_subjects_and_keep_the_class_mix():
    subjects = ["a", "a", "a", "b", "c", "c", "Hd", "Hd", "He"]
    labels = np.asarray([1, 1, 1, 1, 1, 1, 0, 0, 0])
    for draw in subject_resamples(subjects, labels, 200, seed=1):
        drawn = [subjects[i] for i in draw]
        for subject in set(drawn):
            # a subject comes with all of its cells, as many times as it was drawn
            assert drawn.count(subject) % subjects.count(subject) == 0
        whole = sum(drawn.count(s) // subjects.count(s) for s in set(drawn))
        assert whole == 5
        hem_draws = sum(drawn.count(s) // subjects.count(s) for s in set(drawn) if s[0] == "H")
        assert hem_draws == 2


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


def test_baselines_are_cell_area_and_mean_grey(external_root):
    data = index_external(external_root)
    area, grey = cell_appearance_baselines(data.images)
    first = read_image(data.images[0].path)
    mask = first.max(axis=2) > 15
    assert area.values[0] == mask.sum()
    luma = first[mask].astype(float) @ [0.299, 0.587, 0.114]
    assert grey.values[0] == pytest.approx(luma.mean(), abs=0.5)
    report = evaluate_scores(
        data,
        area,
        {
            PART_ALL: subject_resamples(
                [i.subject for i in data.images], np.asarray([i.label for i in data.images]), 20, 0
            )
        },
    )
    labels = np.asarray([image.label for image in data.images])
    assert report.parts[PART_ALL].roc_auc.value == pytest.approx(
        roc_auc_score(labels == LABEL_ALL, area.values)
    )
    assert report.parts[PART_ALL].balanced_accuracy is None  # a baseline has no threshold


def test_a_model_is_scored_exactly_as_the_command_line_predictor_serves_it(external_root, tmp_path):
    model_dir = write_mean_brightness_model(tmp_path / "store" / "brightness")
    record_model(tmp_path / "store", model_dir, default=True)
    data = index_external(external_root)
    scored = score_model_dir(model_dir, data.images)
    assert scored.threshold == 0.5
    out = tmp_path / "served.csv"
    paths = [str(image.path) for image in data.images]
    assert predict_main([*paths, "--out", str(out), "--model-store", str(tmp_path / "store")]) == 0
    with out.open(newline="") as stream:
        served = {row["filename"]: float(row["probability_all"]) for row in csv.DictReader(stream)}
    for image, probability in zip(data.images, scored.values, strict=True):
        assert probability == pytest.approx(served[str(image.path)], abs=1e-6)


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


def test_recording_in_the_card_replaces_the_earlier_evaluation(external_root, tmp_path, capsys):
    from app.core.manifest import load_manifest

    model_dir = write_mean_brightness_model(tmp_path / "brightness")
    args = ["external", "--model", str(model_dir), "--data", str(external_root)]
    for selection in ("first", "second"):
        code = main([*args, "--resamples", "30", "--record-in-card", "--selection", selection])
        assert code == 0
    capsys.readouterr()
    manifest = load_manifest(model_dir)  # the graph is untouched: its checksum still holds
    unseen = [e for e in manifest.evaluations if e.protocol.startswith("unseen subjects")]
    assert len(unseen) == 1
    metrics = unseen[0].metrics
    assert metrics["cells_preliminary_test"] == 6
    assert metrics["roc_auc_all_low"] <= metrics["roc_auc_all"] <= metrics["roc_auc_all_high"]
    assert set(unseen[0].per_subject_accuracy) == {"60", "61", "62", "H70", "H71", "H72"}
    assert manifest.selection == "second"
    assert manifest.limitations[0].startswith("On patients it never saw")
    assert sum(t.startswith("On patients it never saw") for t in manifest.limitations) == 1
    assert "preliminary-test part" in manifest.limitations[0]
    recorded = manifest.changelog[-2:]  # one card-only entry per recording, same weights
    assert all(e.card_only and e.version == manifest.version for e in recorded)
    assert "ROC AUC" in recorded[-1].changes


def test_people_a_model_learned_from_are_never_recorded_as_unseen(tmp_path, capsys):
    import shutil

    from app.settings import bundled_model_store
    from training.cli import main

    store = tmp_path / "store"
    shutil.copytree(bundled_model_store(), store)
    model = store / "efficientnet-lite0-linear-128-cell"  # trained on C-NMC_external too
    before = (model / "manifest.json").read_text()
    external = Path(__file__).parents[3] / "shared" / "data" / "C-NMC_external"
    if not external.is_dir():
        pytest.skip("../shared/data/C-NMC_external is not here")
    args = ["external", "--model", str(model), "--data", str(external), "--record-in-card"]
    assert main([*args, "--resamples", "20"]) == 2
    assert "was trained on" in capsys.readouterr().err
    assert (model / "manifest.json").read_text() == before
