"""Frozen ImageNet features and a regularised linear head, as a run and a cross-validation that
`export` takes like any other.

The backbone keeps its ImageNet weights; an L2 logistic regression on its standardised pooled
features is fitted with each person and class weighing the same (external people scaled by
`population_weights`), then folded into the classifier's linear layer (standardisation
included), so that the exported graph is one network. Fitting takes seconds once the features
are extracted, which is why this is the floor every trained model must beat, and, on the
people we have, the candidate that won (docs/model-selection.md, "Every person we have").

The recipe's channel mean/std are measured once over every indexed cell (a label-free statistic
of the images), so that one feature extraction serves every fold.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from app.core.classifier import sigmoid
from app.core.recipe import PreprocessConfig, channel_statistics
from training.data.cell_dataset import CellDataset
from training.data.dataset_index import CellImage, DatasetError, DatasetIndex, index_training_data
from training.data.image_batches import preprocessed_batches
from training.data.predictions import Predictions
from training.data.splits import Split, subject_grouped_folds, subsample_per_subject
from training.fit.artifacts import CvDir, FoldSummary, RunConfig, RunDir
from training.fit.cross_validation import FIXED_THRESHOLD, cv_summary
from training.fit.models import CellClassifier, create_classifier
from training.fit.train_config import TrainConfig
from training.fit.training_data import describe_subjects, subject_balanced_weights
from training.metrics.classification_metrics import binary_metrics

REGULARISATION_C = 0.1
"""Inverse L2 strength on standardised features: fixed before the runs, never tuned on folds."""


def frozen_features(
    images: Sequence[CellImage],
    recipe: PreprocessConfig,
    backbone: CellClassifier,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """The backbone's pooled features of every cell, prepared by the served recipe."""
    parts = []
    with torch.inference_mode():
        for batch in preprocessed_batches([image.path for image in images], recipe, batch_size):
            parts.append(backbone.eval().backbone(torch.from_numpy(batch)).numpy())
    return np.concatenate(parts)


def frozen_classifier(config: TrainConfig) -> CellClassifier:
    """The network whose backbone gives the features; each fitted head is folded into a copy
    of it, so a run scores exactly with the backbone its head was fitted on."""
    return create_classifier(config.arch, config.head, init_weights=config.init_weights).eval()


def recipe_over(config: TrainConfig, images: Sequence[CellImage]) -> PreprocessConfig:
    """The recipe, its channel mean/std measured over `images` as prepared."""
    unmeasured = config.preprocess_config()
    mean, std = channel_statistics(CellDataset(images, unmeasured, cache=False).iter_prepared())
    return PreprocessConfig.model_validate(
        unmeasured.model_copy(update={"mean": mean, "std": std}).model_dump()
    )


def fit_head(
    features: np.ndarray, images: Sequence[CellImage], population_weights: dict[str, float]
) -> Pipeline:
    weights = np.asarray(subject_balanced_weights(images, population_weights)) * len(images)
    kept = weights > 0
    head = make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION_C, max_iter=5000))
    head.fit(
        features[kept],
        [image.label for image, keep in zip(images, kept, strict=True) if keep],
        logisticregression__sample_weight=weights[kept],
    )
    return head


def folded_linear_layer(head: Pipeline) -> tuple[np.ndarray, float]:
    """(weight, bias) of one linear layer equal to standardise-then-logistic-regression."""
    scaler: StandardScaler = head.named_steps["standardscaler"]
    regression: LogisticRegression = head.named_steps["logisticregression"]
    weight = regression.coef_[0] / scaler.scale_
    bias = float(regression.intercept_[0] - np.sum(weight * scaler.mean_))
    return weight, bias


@dataclass(frozen=True)
class FoldHead:
    """One fold's head, fitted on the other folds' people, and its held-out predictions."""

    split: Split
    head: Pipeline
    predictions: Predictions


def out_of_fold(
    features: np.ndarray,
    images: Sequence[CellImage],
    *,
    folds: int,
    seed: int,
    factors: dict[str, float],
) -> list[FoldHead]:
    """Each fold's held-out cells scored by the head fitted on the other folds' people."""
    position = {image.path: i for i, image in enumerate(images)}
    parts = []
    for split in subject_grouped_folds(images, folds, seed):
        train = [position[image.path] for image in split.train]
        held = [position[image.path] for image in split.validation]
        head = fit_head(features[train], split.train, factors)
        logits = head.decision_function(features[held])
        parts.append(FoldHead(split, head, Predictions(split.validation, logits, sigmoid(logits))))
    return parts


def write_linear_run(
    run: RunDir,
    classifier: CellClassifier,
    config: TrainConfig,
    recipe: PreprocessConfig,
    head: Pipeline,
    split: Split | None,
    images: Sequence[CellImage],
    duplicates_removed: int,
) -> None:
    """The backbone with `head` folded into its linear layer, as a run directory: `export`
    and `--teacher` read it like a trained run."""
    run.path.mkdir(parents=True, exist_ok=True)
    weight, bias = folded_linear_layer(head)
    model = copy.deepcopy(classifier)
    with torch.no_grad():
        head_layer = model.head
        assert isinstance(head_layer, nn.Linear)  # one linear layer (--head timm)
        head_layer.weight.copy_(torch.from_numpy(weight[None, :]).float())
        head_layer.bias.fill_(bias)
    trained_on = list(split.train) if split else list(images)
    run.write_config(
        RunConfig(
            train=config,
            preprocessing=recipe,
            split=split.name if split else None,
            train_subjects=describe_subjects(trained_on),
            validation_subjects=describe_subjects(split.validation) if split else {},
            subject_populations={i.subject: i.population for i in images if i.population},
            duplicates_removed=duplicates_removed,
            torch=torch.__version__,
        )
    )
    checkpoint = {"model": model.state_dict(), "phase": "linear head", "epoch": 0}
    torch.save(checkpoint, run.best_checkpoint)
    torch.save(checkpoint, run.last_checkpoint)


def _indexed(config: TrainConfig) -> tuple[DatasetIndex, list[CellImage]]:
    if config.head != "timm":
        raise DatasetError("linear-head fits one linear layer: --head timm")
    index = index_training_data(config.data, config.extra_data)
    return index, subsample_per_subject(index.images, config.max_images_per_subject)


def linear_head_cv(config: TrainConfig) -> Path:
    """The subject-grouped CV of the linear head: a cv directory `export --cv` reads."""
    cv = CvDir(config.out)
    cv.path.mkdir(parents=True, exist_ok=True)
    cv.write_config(config)
    index, images = _indexed(config)
    recipe = recipe_over(config, images)
    classifier = frozen_classifier(config)
    features = frozen_features(images, recipe, classifier)
    fold_heads = out_of_fold(
        features, images, folds=config.folds, seed=config.seed, factors=config.population_weights
    )
    for fold, part in enumerate(fold_heads):
        fold_config = TrainConfig.model_validate(
            config.model_copy(update={"val_fold": fold, "out": cv.fold(fold).path}).model_dump()
        )
        write_linear_run(
            cv.fold(fold),
            classifier,
            fold_config,
            recipe,
            part.head,
            part.split,
            images,
            index.duplicates_removed,
        )
    parts = [part.predictions for part in fold_heads]
    per_fold = [
        FoldSummary(
            fold=fold,
            validation_subjects=sorted(set(predictions.subjects)),
            metrics=binary_metrics(predictions.labels, predictions.probabilities, FIXED_THRESHOLD),
        )
        for fold, predictions in enumerate(parts)
    ]
    pooled = Predictions.concatenate(parts)
    cv.write_out_of_fold(pooled)
    cv.write_summary(cv_summary(config, index, per_fold, pooled))
    return cv.path


def linear_head_run(config: TrainConfig) -> Path:
    """The linear head fitted on every indexed person: a run directory `export --run` reads."""
    run = RunDir(config.out)
    index, images = _indexed(config)
    recipe = recipe_over(config, images)
    classifier = frozen_classifier(config)
    features = frozen_features(images, recipe, classifier)
    head = fit_head(features, images, config.population_weights)
    write_linear_run(run, classifier, config, recipe, head, None, images, index.duplicates_removed)
    return run.path
