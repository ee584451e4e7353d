"""What is measured on a finished cross-validation's held-out people, after its folds wrote
their predictions: the figures per population, the colour counterfactual and where the Grad-CAM
heat lies. Fitting never reads these, so no choice made while fitting can lean on them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from app.core.gradcam import HEAT_ON_CELL_GOAL
from training.data.dataset_index import DatasetIndex
from training.evaluation.colour_counterfactual import CounterfactualScores, score_counterfactual
from training.evaluation.heat_in_cell import HeatScores, score_heat, summarize_scores
from training.evaluation.population_report import cv_population_report
from training.fit.artifacts import CvDir, CvSummary, HeldOutReport
from training.fit.checkpoints import load_trained_model
from training.fit.cross_validation import held_out_folds, mean_std_of
from training.fit.models import probability_scorer


def evaluate_cross_validation(cv_dir: Path, index: DatasetIndex | None = None) -> CvSummary:
    """The populations' figures (populations.json) when the cells carry populations, and the
    held-out studies when the config asks for them; the summary written again with them."""
    cv = CvDir(cv_dir)
    summary = cv.read_summary()
    if any(image.population for image in cv.read_out_of_fold().images):
        cv_population_report(cv.path)
    if summary.config.held_out_studies and cv.folds():
        summary.colour_counterfactual = counterfactual_on_held_out_folds(cv.path, index)
        summary.heat_in_cell = heat_on_held_out_folds(cv.path, index)
        cv.write_summary(summary)
    return summary


Figures = dict[str, float | int | None]


def _held_out_report(
    protocol: str, per_fold: list[Figures], pooled: Mapping[str, float | int | None]
) -> HeldOutReport:
    """Per-fold figures, their mean ± std (counts left out) and the pooled figures."""
    counts = ("fold", "images")
    return HeldOutReport(
        protocol=protocol,
        per_fold=per_fold,
        mean_std=mean_std_of([{k: v for k, v in f.items() if k not in counts} for f in per_fold]),
        pooled=dict(pooled),
    )


def counterfactual_on_held_out_folds(
    cv_dir: Path, index: DatasetIndex | None = None
) -> HeldOutReport:
    """The colour-counterfactual test out of sample: each fold's model on its held-out
    subjects, re-coloured to the statistics of the other class among its training subjects.
    Written to colour_counterfactual.json in `cv_dir`."""
    per_fold: list[Figures] = []
    parts: list[CounterfactualScores] = []
    for fold in held_out_folds(cv_dir, index):
        scores = score_counterfactual(
            probability_scorer(load_trained_model(fold.run.path), fold.config.threads),
            fold.recipe,
            fold.split.validation,
            fold.split.train,
        )
        parts.append(scores)
        per_fold.append({"fold": fold.config.val_fold, **scores.result().as_json()})
    report = _held_out_report(
        "each fold's model on its held-out subjects, every cell re-coloured to the "
        "inside-cell channel mean/std of the other class among that fold's training cells",
        per_fold,
        CounterfactualScores.combine(parts).result().as_json(),
    )
    CvDir(cv_dir).write_counterfactual(report)
    return report


def heat_on_held_out_folds(cv_dir: Path, index: DatasetIndex | None = None) -> HeldOutReport:
    """Where each fold's model puts its Grad-CAM heat on its held-out subjects: the share
    inside the cell. Written to heat_in_cell.json in `cv_dir`."""
    per_fold: list[Figures] = []
    parts: list[HeatScores] = []
    for fold in held_out_folds(cv_dir, index):
        if fold.config.threads is not None:
            torch.set_num_threads(fold.config.threads)
        scores = score_heat(load_trained_model(fold.run.path), fold.recipe, fold.split.validation)
        parts.append(scores)
        per_fold.append({"fold": fold.config.val_fold, **summarize_scores(scores)})
    report = _held_out_report(
        "each fold's model on its held-out subjects: autograd Grad-CAM on the map the explain "
        "graph reads, upsampled as the server does; share of the heat inside the foreground "
        f"mask of the model's crop (goal {HEAT_ON_CELL_GOAL}); deletion check: change of the "
        "ALL logit when the hottest quarter of the cell, or a random quarter, is flattened to "
        "the cell's mean colour",
        per_fold,
        summarize_scores(HeatScores.combine(parts)),
    )
    CvDir(cv_dir).write_heat(report)
    return report
