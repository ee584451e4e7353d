import numpy as np

from training.data.dataset_index import index_training_data
from training.data.predictions import Predictions
from training.evaluation.cross_validation_reports import evaluate_cross_validation
from training.fit.artifacts import CvDir
from training.fit.cross_validation import summarize_out_of_fold
from training.fit.train_config import TrainConfig


def finished_cv(tmp_path, cnmc_root, extra, name):
    """A cross-validation whose folds wrote their predictions (no fold runs kept)."""
    config = TrainConfig(data=cnmc_root, extra_data=extra, out=tmp_path / name, folds=2)
    cv = CvDir(config.out)
    cv.path.mkdir()
    cv.write_config(config)
    images = index_training_data(cnmc_root, extra).images
    logits = np.random.default_rng(0).normal(size=len(images))
    cv.write_out_of_fold(Predictions(images, logits, 1 / (1 + np.exp(-logits))))
    summarize_out_of_fold(cv.path)
    return cv


def test_the_figures_per_population_are_read_from_the_written_predictions(
    tmp_path, cnmc_root, external_people_root
):
    cv = finished_cv(tmp_path, cnmc_root, [external_people_root], "with-populations")
    summary = evaluate_cross_validation(cv.path)
    assert (cv.path / "populations.json").is_file()
    assert summary.colour_counterfactual is None  # no fold runs: nothing to re-score
