import json

import numpy as np
import pytest

from app.core.classifier import sigmoid
from app.core.manifest import load_manifest
from training.cli import main
from training.data.dataset_index import LABEL_HEM, subject_label
from training.data.predictions import Predictions
from training.evaluation.cross_validation_reports import heat_on_held_out_folds
from training.evaluation.external_report_writing import read_report
from training.fit.artifacts import CV_COUNTERFACTUAL, CV_HEAT_IN_CELL, CV_SUMMARY, OOF_PREDICTIONS
from training.metrics.classification_metrics import best_balanced_accuracy_threshold

pytestmark = pytest.mark.slow


def test_cross_validation_reports_per_fold_pooled_and_mean_std(
    cnmc_root, external_root, tmp_path, capsys
):
    out = tmp_path / "cv"
    code = main(
        [
            "cv",
            "--data",
            str(cnmc_root),
            "--arch",
            "convnext_atto",
            "--img-size",
            "32",
            "--epochs",
            "1",
            "--folds",
            "3",
            "--batch-size",
            "6",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / CV_SUMMARY).read_text())
    assert len(summary["per_fold"]) == 3
    held_out = [set(fold["validation_subjects"]) for fold in summary["per_fold"]]
    assert set.union(*held_out) == {"16", "23", "30", "H10", "H14", "H22"}
    assert all(
        len(subjects) == 2 and any(subject_label(s) == LABEL_HEM for s in subjects)
        for subjects in held_out
    )
    assert summary["pooled"]["n"] == 18
    assert set(summary["mean_std"]["roc_auc"]) == {"mean", "std"}
    out_of_fold = Predictions.read_csv(out / OOF_PREDICTIONS)
    labels, probabilities = out_of_fold.labels, out_of_fold.probabilities
    assert len(labels) == len(probabilities) == 18
    assert (out / "command.txt").read_text().startswith("python -m training cv")
    printed = json.loads(capsys.readouterr().out)
    assert printed["pooled"] == summary["pooled"]

    # The colour counterfactual, out of sample: each fold's model on its own held-out cells.
    counterfactual = summary["colour_counterfactual"]
    assert [fold["images"] for fold in counterfactual["per_fold"]] == [6, 6, 6]
    assert counterfactual["pooled"]["images"] == 18
    assert counterfactual["pooled"]["roc_auc"] == pytest.approx(
        summary["pooled"]["roc_auc"], abs=1e-4
    )  # the same models on the same cells, before re-colouring
    assert json.loads((out / CV_COUNTERFACTUAL).read_text()) == counterfactual
    assert main(["counterfactual", "--cv", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pooled"] == counterfactual["pooled"]

    # Where each fold's Grad-CAM lies on its own held-out cells.
    heat = summary["heat_in_cell"]
    assert [fold["images"] for fold in heat["per_fold"]] == [6, 6, 6]
    assert heat["pooled"]["images"] == 18
    explained = [f for f in heat["per_fold"] if f["images_explained"]]
    assert all(0.0 <= f["mean"] <= 1.0 and 0.0 <= f["at_goal"] <= 1.0 for f in explained)
    assert json.loads((out / CV_HEAT_IN_CELL).read_text()) == heat
    assert main(["heat-in-cell", "--cv", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == heat["pooled"]

    # Unseen subjects: every fold model and their ensemble, written beside the CV.
    assert (
        main(["external", "--cv", str(out), "--data", str(external_root), "--resamples", "50"]) == 0
    )
    printed = capsys.readouterr().out
    assert "cv (fold ensemble)" in printed
    assert "cv/fold2" in printed
    external = read_report(out)
    assert external is not None
    ensemble = external.scorers[0]
    assert set(ensemble.parts) == {"all", "training_folds", "preliminary_test"}
    assert ensemble.threshold == pytest.approx(
        best_balanced_accuracy_threshold(labels, probabilities)
    )

    # The bake-off row is read back from the run, latency measured on the exported graph.
    rows_file = tmp_path / "rows.json"
    assert main(["compare", str(out), "--json", str(rows_file)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | ROC AUC")
    assert table[2].startswith("| cv | ")
    (row,) = json.loads(rows_file.read_text())
    assert row["roc_auc_pooled"] == summary["pooled"]["roc_auc"]
    assert row["counterfactual_auc_drop"] == counterfactual["pooled"]["auc_drop"]
    assert row["heat_in_cell_mean"] == heat["pooled"]["mean"]
    assert row["command"].startswith("python -m training cv")
    assert 3.0 < row["parameters_millions"] < 4.0  # convnext_atto
    assert row["onnx_megabytes"] > 1.0
    assert row["latency_ms_batch1"] > 0
    assert row["external_roc_auc"]["preliminary_test"] == (
        ensemble.parts["preliminary_test"].roc_auc.model_dump()
    )
    assert row["external_rule_score"] == pytest.approx(
        (
            ensemble.parts["training_folds"].roc_auc.value
            + ensemble.parts["preliminary_test"].roc_auc.value
        )
        / 2
    )

    # A final model trained on every subject takes its threshold from the out-of-fold predictions.
    run, model_dir = tmp_path / "final", tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--data",
                str(cnmc_root),
                "--arch",
                "convnext_atto",
                "--img-size",
                "32",
                "--epochs",
                "1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert main(["export", "--run", str(run), "--out", str(model_dir), "--cv", str(out)]) == 0
    manifest = load_manifest(model_dir)
    assert "out-of-fold" in manifest.threshold.source
    calibration = manifest.calibration
    assert calibration is not None
    assert "out-of-fold" in calibration.fitted_on
    logits = np.log(probabilities) - np.log1p(-probabilities)
    calibrated = sigmoid(calibration.apply(logits))
    assert manifest.threshold.value == pytest.approx(
        best_balanced_accuracy_threshold(labels, calibrated), abs=1e-5
    )
    assert sum(b.count for b in calibration.reliability_after) == 18
    tta = manifest.test_time_augmentation
    assert tta is not None
    assert "3 cross-validation models" in tta.measured_on
    assert tta.default == (tta.roc_auc_with - tta.roc_auc_without >= 0.005)
    assert manifest.quality_reference is not None
    assert manifest.evaluations[0].metrics == summary["pooled"]
    by_protocol = {e.protocol.split(",")[0]: e.metrics for e in manifest.evaluations}
    assert by_protocol["colour counterfactual"] == counterfactual["pooled"]
    # The card's heat figure is what the measure returns when run again on the same folds.
    remeasured = heat_on_held_out_folds(out).pooled
    assert by_protocol["Grad-CAM heat on the cell"] == {
        k: v for k, v in remeasured.items() if v is not None
    }
    assert by_protocol["the same cross-validation"]["roc_auc_std"] == pytest.approx(
        summary["mean_std"]["roc_auc"]["std"]
    )
    assert "6 subjects (3 ALL, 3 HEM)" in manifest.limitations[0]
    assert manifest.training_data.images_all + manifest.training_data.images_hem == 18


def test_a_summary_is_rebuilt_from_out_of_fold_predictions(
    cnmc_root, external_people_root, tmp_path
):
    import numpy as np

    from training.data.dataset_index import index_training_data
    from training.data.predictions import Predictions
    from training.fit.artifacts import CvDir
    from training.fit.cross_validation import summarize_out_of_fold
    from training.fit.train_config import TrainConfig

    config = TrainConfig(
        data=cnmc_root, extra_data=[external_people_root], out=tmp_path / "cv", folds=2
    )
    cv = CvDir(config.out)
    cv.path.mkdir()
    cv.write_config(config)
    images = index_training_data(cnmc_root, [external_people_root]).images
    logits = np.random.default_rng(0).normal(size=len(images))
    cv.write_out_of_fold(Predictions(images, logits, 1 / (1 + np.exp(-logits))))
    summary = summarize_out_of_fold(cv.path)
    held_out = [s for fold in summary.per_fold for s in fold.validation_subjects]
    assert sorted(held_out) == sorted({image.subject for image in images})  # each once
    assert sum(fold.metrics.n for fold in summary.per_fold) == len(images)
    assert cv.summary_file.is_file()
