"""Scorers of cells: an exported model as served, a cross-validation's fold models and their
ensemble, and the image-only baselines (cell area, mean grey) every model has to beat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.core.cell_colour import foreground_mask
from training.data.dataset_index import CellImage, read_image
from training.fit.artifacts import CvDir

BASELINE_FOREGROUND_THRESHOLD = 15


@dataclass(frozen=True)
class Scores:
    """One scorer's output per image: a probability of ALL, or a baseline's raw feature."""

    name: str
    values: np.ndarray
    threshold: float | None
    kind: str = "model"


def cell_appearance_baselines(images: Sequence[CellImage]) -> list[Scores]:
    """What the fold-1 cues alone give: a larger cell, a brighter cell = ALL."""
    areas, greys = [], []
    for image in images:
        rgb = read_image(image.path)
        mask = foreground_mask(rgb, BASELINE_FOREGROUND_THRESHOLD)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        areas.append(float(mask.sum()))
        greys.append(float(grey[mask].mean()) if mask.any() else 0.0)
    return [
        Scores("baseline: cell area (larger = ALL)", np.asarray(areas), None, "baseline"),
        Scores(
            "baseline: mean grey in the cell (brighter = ALL)", np.asarray(greys), None, "baseline"
        ),
    ]


def score_model_dir(
    model_dir: Path, images: Sequence[CellImage], *, tta: bool | None = None
) -> Scores:
    """An exported model exactly as the server runs it: its recipe, onnxruntime, its
    calibration, its threshold, and test-time augmentation when its card turns it on."""
    from app.core.classifier import OnnxCellClassifier
    from training.data.image_batches import preprocessed_batches

    classifier = OnnxCellClassifier(model_dir)
    use_tta = classifier.tta_by_default if tta is None else tta
    recipe = classifier.manifest.preprocessing
    batches = preprocessed_batches([image.path for image in images], recipe, 32)
    probabilities = np.concatenate(
        [classifier.predict(batch, tta=use_tta).probabilities for batch in batches]
    )
    manifest = classifier.manifest
    name = f"{manifest.id} v{manifest.version}" + (" (TTA)" if use_tta else "")
    return Scores(name, probabilities, manifest.threshold.value)


def score_cross_validation(cv_dir: Path, images: Sequence[CellImage]) -> list[Scores]:
    """Every fold model of a cross-validation, and the fold models as one ensemble (mean
    logit). Their threshold is the one export would serve: the best balanced accuracy on the
    cross-validation's own out-of-fold predictions (fold 1), never on these images."""
    from app.core.classifier import sigmoid
    from training.data.image_batches import preprocessed_batches
    from training.fit.checkpoints import load_trained_model
    from training.fit.models import predict_logits
    from training.metrics.classification_metrics import best_balanced_accuracy_threshold

    cv = CvDir(cv_dir)
    out_of_fold = cv.read_out_of_fold()
    labels, probabilities = out_of_fold.labels.tolist(), out_of_fold.probabilities.tolist()
    threshold = best_balanced_accuracy_threshold(labels, probabilities)
    paths = [image.path for image in images]
    fold_logits = []
    scores = []
    for run in cv.folds():
        recipe = run.read_config().preprocessing
        model = load_trained_model(run.path)
        batches = preprocessed_batches(paths, recipe, 32)
        logits = np.concatenate([predict_logits(model, b) for b in batches]).astype(np.float64)
        fold_logits.append(logits)
        scores.append(Scores(f"{cv_dir.name}/{run.path.name}", sigmoid(logits), threshold))
    ensemble = sigmoid(np.mean(fold_logits, axis=0))
    scores.insert(0, Scores(f"{cv_dir.name} (fold ensemble)", ensemble, threshold))
    return scores
