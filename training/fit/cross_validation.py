"""Subject-grouped k-fold cross-validation: per-fold, pooled, and mean ± std.

Each validation fold holds whole subjects, at least one of each class. Per-fold figures are
reported beside the pooled ones because with few HEM subjects a single subject can swing
a fold by a lot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.recipe import PreprocessConfig
from training.data.cell_dataset import PreparedCache
from training.data.dataset_index import DatasetIndex, index_training_data
from training.data.predictions import Predictions
from training.data.splits import Split, subsample_per_subject
from training.fit.artifacts import CvDir, CvSummary, FoldSummary, MeanStd, RunDir
from training.fit.train_config import TrainConfig
from training.fit.trainer import train
from training.fit.training_data import make_split
from training.metrics.classification_metrics import (
    binary_metrics,
    mean_and_std,
    per_subject_accuracy,
)

FIXED_THRESHOLD = 0.5


def run_cross_validation(config: TrainConfig, *, command: str | None = None) -> CvSummary:
    """Train one model per fold into out/fold<k>; write oof_predictions.csv and cv_summary.json.
    The config (and `command`, the command line) are saved when it starts. What is measured on
    the held-out people afterwards is the evaluation layer's (`evaluate_cross_validation`)."""
    cv = CvDir(config.out)
    cv.path.mkdir(parents=True, exist_ok=True)
    cv.write_config(config)
    if command is not None:
        cv.write_command(command)
    index = index_training_data(config.data, config.extra_data)
    per_fold: list[FoldSummary] = []
    out_of_fold: list[Predictions] = []
    prepared_cache: PreparedCache = {}
    for fold in range(config.folds):
        fold_config = config.model_copy(update={"val_fold": fold, "out": cv.fold(fold).path})
        fold_config = TrainConfig.model_validate(fold_config.model_dump())
        result = train(fold_config, index, prepared_cache)
        if result.validation is None:
            raise RuntimeError(f"fold {fold} produced no validation predictions")
        predictions = result.validation
        out_of_fold.append(predictions)
        metrics = binary_metrics(predictions.labels, predictions.probabilities, FIXED_THRESHOLD)
        per_fold.append(
            FoldSummary(
                fold=fold, validation_subjects=sorted(set(predictions.subjects)), metrics=metrics
            )
        )
    pooled = Predictions.concatenate(out_of_fold)
    cv.write_out_of_fold(pooled)
    summary = cv_summary(config, index, per_fold, pooled)
    cv.write_summary(summary)
    return summary


def cv_summary(
    config: TrainConfig, index: DatasetIndex, per_fold: list[FoldSummary], pooled: Predictions
) -> CvSummary:
    return CvSummary(
        protocol=(
            f"{config.folds}-fold subject-grouped cross-validation on "
            f"{len(pooled.images)} images (de-duplicated, "
            f"max {config.max_images_per_subject or 'all'} per subject); "
            f"metrics at the fixed threshold {FIXED_THRESHOLD}, {config.epoch_choice}"
        ),
        config=config,
        images_indexed=len(subsample_per_subject(index.images, config.max_images_per_subject)),
        per_fold=per_fold,
        mean_std=mean_std_of([fold.metrics.as_dict() for fold in per_fold]),
        pooled=binary_metrics(pooled.labels, pooled.probabilities, FIXED_THRESHOLD),
        per_subject_accuracy=per_subject_accuracy(
            pooled.subjects, pooled.labels.tolist(), pooled.probabilities.tolist(), FIXED_THRESHOLD
        ),
    )


def summarize_out_of_fold(cv_dir: Path) -> CvSummary:
    """cv_summary.json again from a cross-validation's out-of-fold predictions (a run stopped
    after its folds, before the held-out studies): each fold's figures from its own subjects."""
    cv = CvDir(cv_dir)
    config = TrainConfig.model_validate_json(cv.config_file.read_text(encoding="utf-8"))
    index = index_training_data(config.data, config.extra_data)
    pooled = cv.read_out_of_fold()
    position = {str(image.path): i for i, image in enumerate(pooled.images)}
    per_fold: list[FoldSummary] = []
    for fold in range(config.folds):
        fold_config = config.model_copy(update={"val_fold": fold})
        split = make_split(
            fold_config, subsample_per_subject(index.images, config.max_images_per_subject)
        )
        if split is None:
            raise ValueError(f"{cv_dir}: fold {fold} has no held-out subjects")
        rows = [position[str(image.path)] for image in split.validation]
        metrics = binary_metrics(pooled.labels[rows], pooled.probabilities[rows], FIXED_THRESHOLD)
        subjects = sorted({image.subject for image in split.validation})
        per_fold.append(FoldSummary(fold=fold, validation_subjects=subjects, metrics=metrics))
    summary = cv_summary(config, index, per_fold, pooled)
    cv.write_summary(summary)
    return summary


def mean_std_of(per_fold: Sequence[Mapping[str, object]]) -> dict[str, MeanStd]:
    return {name: MeanStd(**spread) for name, spread in mean_and_std(per_fold).items()}


@dataclass(frozen=True)
class HeldOutFold:
    """One fold of a finished cross-validation: its run, how it was trained, its split."""

    run: RunDir
    config: TrainConfig
    recipe: PreprocessConfig
    split: Split


def held_out_folds(cv_dir: Path, index: DatasetIndex | None = None) -> Iterator[HeldOutFold]:
    """Each fold of `cv_dir` with the subjects it held out, rebuilt from its saved config."""
    runs = CvDir(cv_dir).folds()
    if not runs:
        raise ValueError(f"no fold directories in {cv_dir}")
    for run in runs:
        run_config = run.read_config()
        config, recipe = run_config.train, run_config.preprocessing
        index = index or index_training_data(config.data, config.extra_data)
        split = make_split(
            config, subsample_per_subject(index.images, config.max_images_per_subject)
        )
        if split is None:
            raise ValueError(f"{run.path} was trained without held-out subjects")
        yield HeldOutFold(run, config, recipe, split)
