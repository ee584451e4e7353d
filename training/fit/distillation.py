"""Distillation (`--teacher`): a student learns a trained model's probabilities as well as the
labels, on the same augmented batches."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import torch
from torch import nn

from app.core.recipe import PreprocessConfig
from training.fit.artifacts import CvDir, RunDir
from training.fit.checkpoints import load_trained_model
from training.fit.models import CellClassifier
from training.fit.train_config import TrainConfig


def teacher_runs(teacher: Path, val_fold: int | None) -> list[RunDir]:
    """A train run teaches alone; of a cv directory, fold k's model teaches fold k, and all
    fold models together teach a run that holds no fold out."""
    cv = CvDir(teacher)
    folds = cv.folds()
    if not folds:
        return [RunDir(teacher)]
    if val_fold is not None:
        return [cv.fold(val_fold)]
    return folds


def load_teachers(
    config: TrainConfig, recipe: PreprocessConfig, held_out: Collection[str] = ()
) -> list[CellClassifier]:
    """The teacher model(s) of a distillation run, frozen; they must read the same recipe, and
    none may have learned from a person the student holds out (`held_out`): its soft targets
    would carry that person's labels into the student's validation figures."""
    if config.teacher is None:
        return []
    teachers = []
    for run in teacher_runs(config.teacher, config.val_fold):
        teacher_config = run.read_config()
        teacher_recipe = teacher_config.preprocessing
        ignored = {"mean", "std"}  # measured per split, on the same subjects
        if teacher_recipe.model_dump(exclude=ignored) != recipe.model_dump(exclude=ignored):
            raise ValueError(f"teacher {run.path} was trained with another recipe")
        seen = sorted(set(teacher_config.train_subjects) & set(held_out))
        if seen:
            raise ValueError(
                f"teacher {run.path} learned from {len(seen)} people this run holds out "
                f"({', '.join(seen[:5])}{', ...' if len(seen) > 5 else ''}): deal the teacher's "
                "folds from the same cells (--folds, --seed, --max-images-per-subject)"
            )
        teacher = load_trained_model(run.path)
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        teachers.append(teacher)
    return teachers


def distillation_loss(
    logits: torch.Tensor,
    label_loss: torch.Tensor,
    teachers: Sequence[nn.Module],
    batch: torch.Tensor,
    weight: float,
) -> torch.Tensor:
    """Mix the label loss with the cross-entropy to the teachers' mean probability on the same
    augmented batch (Hinton et al., 2015, with one logit): the student learns what the teacher
    learned under the augmentations, not just the 14 subjects' labels."""
    with torch.no_grad():
        target = torch.sigmoid(torch.stack([t(batch) for t in teachers]).float().mean(dim=0))
    soft = nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
    return (1 - weight) * label_loss + weight * soft
