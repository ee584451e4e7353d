"""The morphology candidate as a study: its subject-grouped CV on the training root, then the
same model on unseen subjects (optionally blended with an exported model), or its CV over
every person as a cv directory for `populations`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.dataset_index import index_dataset, index_training_data
from training.data.predictions import Predictions
from training.evaluation.external_evaluation import external_report, index_external
from training.evaluation.external_report_writing import markdown, write_report
from training.evaluation.population_report import cv_population_report, markdown_table
from training.evaluation.scorers import Scores, score_model_dir
from training.fit.artifacts import CvDir
from training.metrics.classification_metrics import best_balanced_accuracy_threshold, binary_metrics
from training.studies.morphology import (
    feature_matrix,
    morphology_classifier,
    out_of_fold_probabilities,
)
from training.studies.score_blending import threshold_centred_blend


def morphology_candidate(
    data: Path,
    *,
    folds: int,
    external: Path | None = None,
    blend_with: Path | None = None,
    resamples: int = 2000,
    out: Path | None = None,
) -> list[str]:
    """The texts to print: the out-of-fold figures on `data`, then, with `external`, the
    report on its unseen subjects (beside `blend_with` and the blend of both)."""
    images = index_dataset(data).images
    labels = np.asarray([image.label for image in images])
    features = feature_matrix(images)
    out_of_fold = out_of_fold_probabilities(images, features, folds)
    threshold = best_balanced_accuracy_threshold(labels.tolist(), out_of_fold.tolist())
    cv = binary_metrics(labels, out_of_fold, threshold)
    printed = [
        f"fold-1 CV, out of fold: ROC AUC {cv.roc_auc:.3f}, balanced accuracy "
        f"{cv.balanced_accuracy:.3f} at the out-of-fold threshold {threshold:.3f}"
    ]
    if external is None:
        return printed
    model = morphology_classifier().fit(features, labels)
    unseen = index_external(external)
    probabilities = model.predict_proba(feature_matrix(unseen.images))[:, 1]
    scorers = [Scores("morphology (logistic regression)", probabilities, threshold)]
    against = None
    if blend_with is not None:
        against = score_model_dir(blend_with, unseen.images)
        scorers.append(
            threshold_centred_blend(f"morphology + {against.name} (blend)", [scorers[0], against])
        )
    report = external_report(unseen, scorers, root=external, against=against, resamples=resamples)
    printed.append(write_report(report, out) if out else markdown(report))
    return printed


def morphology_over_populations(
    data: Path, extra_data: list[Path], *, folds: int, out: Path, resamples: int = 2000
) -> str:
    """The morphology model in the CV over every person: out-of-fold predictions written to
    `out` as a cv directory; its table per population."""
    images = index_training_data(data, extra_data).images
    probabilities = out_of_fold_probabilities(
        images, feature_matrix(images), folds, person_balanced=True
    )
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    out.mkdir(parents=True, exist_ok=True)
    CvDir(out).write_out_of_fold(
        Predictions(images, np.log(clipped / (1 - clipped)), probabilities)
    )
    return markdown_table([cv_population_report(out, resamples=resamples)])
