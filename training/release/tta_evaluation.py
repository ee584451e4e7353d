"""What the server's 8-view test-time augmentation (app/core/tta_transforms.py) buys on
held-out subjects, and costs: the figures of the model card's test_time_augmentation."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from app.core.classifier import OnnxCellClassifier
from app.core.manifest import TestTimeAugmentationCard
from app.core.recipe import PreprocessConfig
from app.core.tta_transforms import average_over_transforms, dihedral_transforms
from training.data.image_batches import preprocessed_batches
from training.fit.artifacts import RunDir
from training.fit.checkpoints import load_trained_model
from training.fit.models import predict_probabilities
from training.metrics.classification_metrics import binary_metrics

MIN_AUC_GAIN_FOR_DEFAULT = 0.005
BATCH = 16


def plain_and_tta_probabilities(
    model: torch.nn.Module, paths: list[Path], recipe: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Each file's probability as it is, and averaged over the server's 8 views."""
    plain, averaged = [], []
    for tensors in preprocessed_batches(paths, recipe, BATCH):
        plain.append(predict_probabilities(model, tensors))
        views = np.concatenate([dihedral_transforms(t) for t in tensors])
        averaged.append(average_over_transforms(predict_probabilities(model, views)))
    return np.concatenate(plain), np.concatenate(averaged)


def measure_tta(
    run_dirs: list[Path], recipe: PreprocessConfig, model_dir: Path, description: str
) -> TestTimeAugmentationCard:
    """Each run's model on its own held-out subjects, pooled; latency on the exported graph."""
    labels, without, with_tta = [], [], []
    for run_dir in run_dirs:
        held_out = RunDir(run_dir).read_validation_predictions()
        paths, run_labels = [image.path for image in held_out.images], held_out.labels
        plain, averaged = plain_and_tta_probabilities(load_trained_model(run_dir), paths, recipe)
        labels.append(run_labels)
        without.append(plain)
        with_tta.append(averaged)
    y = np.concatenate(labels)
    before = binary_metrics(y, np.concatenate(without), 0.5)
    after = binary_metrics(y, np.concatenate(with_tta), 0.5)
    latency = _latency_ms(model_dir, recipe.input_size)
    gain = after.roc_auc - before.roc_auc
    return TestTimeAugmentationCard(
        default=gain >= MIN_AUC_GAIN_FOR_DEFAULT,
        measured_on=f"{description}; {len(y)} images; balanced accuracy at 0.5; on when the "
        f"ROC AUC gains at least {MIN_AUC_GAIN_FOR_DEFAULT}",
        roc_auc_without=before.roc_auc,
        roc_auc_with=after.roc_auc,
        balanced_accuracy_without=before.balanced_accuracy,
        balanced_accuracy_with=after.balanced_accuracy,
        latency_ms_without=latency[0],
        latency_ms_with=latency[1],
    )


def _latency_ms(model_dir: Path, size: int, repeats: int = 20) -> tuple[float, float]:
    classifier = OnnxCellClassifier(model_dir)
    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    medians = []
    for tta in (False, True):
        classifier.predict(image, tta=tta)
        durations = []
        for _ in range(repeats):
            started = time.perf_counter()
            classifier.predict(image, tta=tta)
            durations.append((time.perf_counter() - started) * 1000)
        medians.append(round(float(np.median(durations)), 3))
    return medians[0], medians[1]
