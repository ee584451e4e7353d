import json
import math
from pathlib import Path

import pytest

from app.core.recipe import PreprocessConfig
from training.fit.artifacts import (
    CvDir,
    CvSummary,
    EpochRow,
    FoldSummary,
    HeldOutReport,
    MeanStd,
    RunConfig,
    RunDir,
    read_train_config,
)
from training.fit.train_config import TrainConfig
from training.metrics.classification_metrics import binary_metrics


def run_config(out: Path) -> RunConfig:
    return RunConfig(
        train=TrainConfig(data=Path("/data/C-NMC"), out=out, img_size=64, val_fold=1),
        preprocessing=PreprocessConfig(input_size=64, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)),
        split="fold 1 of 3",
        train_subjects={"16": 3, "H10": 3},
        validation_subjects={"23": 3, "H14": 3},
        duplicates_removed=2,
        torch="2.0",
    )


def test_run_config_round_trip(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    written = run_config(run.path)
    run.write_config(written)
    assert run.config_file == tmp_path / "run/config.json"
    assert run.read_config() == written
    # The card keeps the file's content as it is.
    assert run.read_config().as_card_json() == json.loads(run.config_file.read_text())
    assert read_train_config(run.config_file) == written.train


def test_an_older_config_reaches_the_card_without_added_keys(tmp_path):
    run = RunDir(tmp_path)
    payload = json.loads(run_config(tmp_path).model_dump_json())
    del payload["torch"], payload["duplicates_removed"]
    payload["note"] = "kept"
    run.config_file.write_text(json.dumps(payload))
    read = run.read_config()
    assert read.duplicates_removed == 0
    assert read.as_card_json() == payload


def test_cv_config_and_command_round_trip(tmp_path):
    cv = CvDir(tmp_path)
    config = TrainConfig(data=Path("/data"), out=tmp_path, folds=4, epochs=3)
    assert cv.read_command() == ""
    cv.write_config(config)
    cv.write_command("python -m training cv --data /data")
    assert read_train_config(cv.config_file) == config
    assert cv.command_file.read_text() == "python -m training cv --data /data\n"
    assert cv.read_command() == "python -m training cv --data /data"


def test_metrics_lines_leave_out_what_an_epoch_did_not_measure(tmp_path):
    run = RunDir(tmp_path)
    run.start_metrics()
    head = EpochRow(
        phase="head", epoch=1, train_loss=0.5, lr=1e-3, seconds=1.5, images_per_second=8
    )
    validation = binary_metrics([0, 1], [0.3, 0.6], 0.5)
    full = head.model_copy(update={"phase": "full", "validation": validation})
    run.append_metrics(head)
    run.append_metrics(full)
    lines = [json.loads(line) for line in run.metrics_file.read_text().splitlines()]
    assert list(lines[0]) == ["phase", "epoch", "train_loss", "lr", "seconds", "images_per_second"]
    assert lines[1]["validation"] == validation.as_dict()
    assert run.read_metrics() == [head, full]


def test_cv_summary_round_trip_keeps_nan(tmp_path):
    cv = CvDir(tmp_path)
    one_class = binary_metrics([1, 1], [0.2, 0.9], 0.5)
    report = HeldOutReport(
        protocol="p",
        per_fold=[{"fold": 0, "images": 6, "mean": None}],
        mean_std={},
        pooled={"images": 6, "mean": 0.25},
    )
    summary = CvSummary(
        protocol="3-fold",
        config=TrainConfig(data=Path("/data"), out=tmp_path),
        images_indexed=2,
        per_fold=[FoldSummary(fold=0, validation_subjects=["16"], metrics=one_class)],
        mean_std={"roc_auc": MeanStd(mean=math.nan, std=math.nan)},
        pooled=one_class,
        per_subject_accuracy={"16": 0.5},
        colour_counterfactual=report,
        heat_in_cell=report,
    )
    cv.write_summary(summary)
    assert "NaN" in cv.summary_file.read_text()  # as json.dumps always wrote it
    read = cv.read_summary()
    assert math.isnan(read.pooled.roc_auc)
    assert read.per_fold[0].metrics.confusion_matrix == one_class.confusion_matrix
    assert read.heat_in_cell == report
    cv.write_heat(report)
    assert cv.read_heat() == report
    assert cv.read_counterfactual() is None  # an older cv without the measurement


def test_folds_are_the_fold_directories_in_name_order(tmp_path):
    cv = CvDir(tmp_path)
    for name in ("fold1", "fold0", "folder", "notes"):
        (tmp_path / name).mkdir()
    assert [run.path.name for run in cv.folds()] == ["fold0", "fold1"]
    assert cv.fold(1) == RunDir(tmp_path / "fold1")


@pytest.mark.parametrize("name", ["best_checkpoint", "last_checkpoint", "val_predictions"])
def test_run_files_live_in_the_run_directory(tmp_path, name):
    assert getattr(RunDir(tmp_path), name).parent == tmp_path
