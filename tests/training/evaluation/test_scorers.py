import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.cli.predict import main as predict_main
from app.core.model_registry import record_model
from tests.conftest import write_mean_brightness_model
from training.data.dataset_index import LABEL_ALL, read_image
from training.evaluation.external_evaluation import PART_ALL, evaluate_scores, index_external
from training.evaluation.scorers import cell_appearance_baselines, score_model_dir
from training.metrics.subject_resampling import subject_resamples


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
