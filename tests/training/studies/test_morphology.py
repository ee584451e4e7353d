import cv2
import numpy as np
import pytest

from app.core.image_decoding import decode_image
from training.cli import main
from training.evaluation.external_evaluation import ExternalReport
from training.studies.morphology import FEATURE_NAMES, cell_features


def test_features_ignore_brightness_and_absolute_size(real_cell_png):
    cell = decode_image(real_cell_png)
    features = cell_features(cell)
    assert features.shape == (len(FEATURE_NAMES),)
    darker = np.where(cell > 15, np.round(cell * 0.7), 0).astype(np.uint8)
    darker = np.where(cell > 15, np.maximum(darker, 16), 0).astype(np.uint8)
    np.testing.assert_allclose(cell_features(darker)[:7], features[:7], atol=0.03)  # shape, nucleus
    larger = cv2.resize(cell, None, fx=1.25, fy=1.25, interpolation=cv2.INTER_LINEAR)
    shape = dict(zip(FEATURE_NAMES, cell_features(larger), strict=True))
    reference = dict(zip(FEATURE_NAMES, features, strict=True))
    for name in ("cell_eccentricity", "cell_solidity", "nucleus_to_cell_ratio"):
        assert shape[name] == pytest.approx(reference[name], abs=0.05)


def test_an_empty_image_has_zero_features():
    assert not cell_features(np.zeros((64, 64, 3), np.uint8)).any()


@pytest.mark.slow
def test_the_command_cross_validates_and_measures_unseen_subjects(
    cnmc_root, external_root, tmp_path, capsys
):
    out = tmp_path / "report"
    args = ["morphology", "--data", str(cnmc_root), "--external", str(external_root)]
    assert main([*args, "--resamples", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("fold-1 CV, out of fold: ROC AUC")
    assert "morphology (logistic regression)" in printed
    assert (out / "external_evaluation.json").is_file()


@pytest.mark.slow
def test_the_command_blends_with_a_served_model(
    cnmc_root, external_root, brightness_model_dir, tmp_path, capsys
):
    out = tmp_path / "report"
    args = ["morphology", "--data", str(cnmc_root), "--external", str(external_root)]
    args += ["--blend-with", str(brightness_model_dir), "--resamples", "30", "--out", str(out)]
    assert main(args) == 0
    report = ExternalReport.model_validate_json((out / "external_evaluation.json").read_text())
    names = [scorer.name for scorer in report.scorers]
    served = next(name for name in names if name.startswith("brightness"))
    assert f"morphology + {served} (blend)" in names
    assert [pair.against for pair in report.paired] == [served, served]


def test_a_missing_model_to_blend_with_is_refused_before_any_work(cnmc_root, tmp_path, capsys):
    args = ["morphology", "--data", str(cnmc_root), "--external", str(tmp_path)]
    assert main([*args, "--blend-with", str(tmp_path / "absent")]) == 2
    assert "--blend-with" in capsys.readouterr().err


def test_blending_needs_the_unseen_subjects(cnmc_root, brightness_model_dir, capsys):
    args = ["morphology", "--data", str(cnmc_root), "--blend-with", str(brightness_model_dir)]
    assert main(args) == 2
    assert "--blend-with needs --external" in capsys.readouterr().err
