"""Figures per population: how a model does on people it never saw, each group on its own.

Fold 1 (14 people of one acquisition batch), the external training-fold people and the
external preliminary-test people differ in cell size and brightness, so a pooled figure hides
exactly what matters. Every figure here comes with a 95% interval from resampling whole people
(cells of one person are not independent), and beside the cell-level ROC AUC stands the
subject-level one: each person's mean score, one point per person.

Out-of-fold predictions are read at the fixed threshold 0.5: candidates train class-balanced,
so nothing is fitted to these figures (the rule of docs/model-selection.md, "Every person we have").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from app.core.classifier import sigmoid
from training.data.dataset_index import (
    EXTERNAL_FOLDS,
    EXTERNAL_PRELIM,
    LABEL_ALL,
    LABEL_HEM,
    CellImage,
    populations_of,
)
from training.evaluation.scorers import cell_appearance_baselines
from training.fit.artifacts import CvDir
from training.metrics.subject_resampling import (
    AtThreshold,
    Interval,
    metric_interval,
    roc_auc,
    subject_resamples,
)

EXTERNAL = "external"
"""Both external populations together: every person outside fold 1."""
RULE_POPULATIONS = (EXTERNAL_FOLDS, EXTERNAL_PRELIM)
FIXED_THRESHOLD = 0.5
POPULATIONS_FILE = "populations.json"
DEFAULT_RESAMPLES = 2000


class PopulationCounts(BaseModel):
    cells: int
    people_all: int
    people_hem: int
    roc_auc: Interval
    subject_roc_auc: Interval


class PopulationFigures(AtThreshold, PopulationCounts):
    """A population's counts and AUCs, then its figures at the threshold."""

    per_person: dict[str, float] = {}
    """Each ALL person's sensitivity and each healthy donor's specificity."""


class PopulationReport(BaseModel):
    name: str
    kind: str
    """`out-of-fold` (a cross-validation), `served` (a model scored as served), `baseline`."""
    threshold: float | None
    resamples: int
    seed: int
    populations: dict[str, PopulationFigures]
    note: str = ""

    def rule_score(self) -> float | None:
        """The selection rule: mean cell-level ROC AUC on the two external populations."""
        if not all(p in self.populations for p in RULE_POPULATIONS):
            return None
        return float(np.mean([self.populations[p].roc_auc.value for p in RULE_POPULATIONS]))


def population_groups(images: Sequence[CellImage]) -> dict[str, list[int]]:
    """Positions of each population's cells, and of all external people together."""
    groups: dict[str, list[int]] = {}
    for population in populations_of(images):
        groups[population] = [i for i, image in enumerate(images) if image.population == population]
    external = [i for i, image in enumerate(images) if image.population in RULE_POPULATIONS]
    if external:
        groups[EXTERNAL] = external
    return groups


def _person_means(
    subjects: Sequence[str], labels: np.ndarray, scores: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    cells_of: dict[str, list[int]] = defaultdict(list)
    for position, subject in enumerate(subjects):
        cells_of[subject].append(position)
    people = sorted(cells_of)
    return (
        people,
        np.asarray([labels[cells_of[p][0]] for p in people]),
        np.asarray([scores[cells_of[p]].mean() for p in people]),
    )


def _per_person(
    subjects: Sequence[str], labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    correct: dict[str, list[bool]] = defaultdict(list)
    for subject, label, score in zip(subjects, labels, scores, strict=True):
        correct[subject].append(bool((score >= threshold) == (label == LABEL_ALL)))
    return {subject: float(np.mean(calls)) for subject, calls in sorted(correct.items())}


def population_figures(
    subjects: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
    *,
    resamples: int,
    seed: int,
) -> PopulationFigures:
    draws = subject_resamples(subjects, labels, resamples, seed)
    people, person_labels, person_scores = _person_means(subjects, labels, scores)
    person_draws = subject_resamples(people, person_labels, resamples, seed)
    figures = PopulationFigures(
        cells=len(labels),
        people_all=int((person_labels == LABEL_ALL).sum()),
        people_hem=int((person_labels == LABEL_HEM).sum()),
        roc_auc=metric_interval(roc_auc, labels, scores, draws),
        subject_roc_auc=metric_interval(roc_auc, person_labels, person_scores, person_draws),
    )
    if threshold is None:
        return figures
    for name, value in AtThreshold.measure(labels, scores, threshold, draws):
        setattr(figures, name, value)
    figures.per_person = _per_person(subjects, labels, scores, threshold)
    return figures


def population_report(
    name: str,
    kind: str,
    images: Sequence[CellImage],
    scores: np.ndarray,
    threshold: float | None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    only: Sequence[str] | None = None,
    note: str = "",
) -> PopulationReport:
    """Figures for each population of `images` (those in `only`, when given)."""
    labels = np.asarray([image.label for image in images])
    subjects = [image.subject for image in images]
    populations: dict[str, PopulationFigures] = {}
    for population, members in population_groups(images).items():
        if only is not None and population not in only:
            continue
        populations[population] = population_figures(
            [subjects[i] for i in members],
            labels[members],
            scores[members],
            threshold,
            resamples=resamples,
            seed=seed,
        )
    return PopulationReport(
        name=name,
        kind=kind,
        threshold=threshold,
        resamples=resamples,
        seed=seed,
        populations=populations,
        note=note,
    )


def cv_population_report(
    cv_dir: Path, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> PopulationReport:
    """A cross-validation's out-of-fold predictions, per population; written beside them."""
    out_of_fold = CvDir(cv_dir).read_out_of_fold()
    if not any(image.population for image in out_of_fold.images):
        raise ValueError(f"{cv_dir}: its out-of-fold predictions carry no population column")
    report = population_report(
        cv_dir.name,
        "out-of-fold",
        out_of_fold.images,
        out_of_fold.probabilities,
        FIXED_THRESHOLD,
        resamples=resamples,
        seed=seed,
    )
    (cv_dir / POPULATIONS_FILE).write_text(report.model_dump_json(indent=2) + "\n")
    return report


def blended_report(
    first: Path, second: Path, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> PopulationReport:
    """Two cross-validations' out-of-fold logits averaged, cell by cell (same cells, same folds:
    nothing is fitted on the held-out people)."""
    a, b = CvDir(first).read_out_of_fold(), CvDir(second).read_out_of_fold()
    logit_of = {image.path: logit for image, logit in zip(b.images, b.logits, strict=True)}
    shared = [i for i, image in enumerate(a.images) if image.path in logit_of]
    if not shared:
        raise ValueError(f"{first} and {second} share no cell")
    images = [a.images[i] for i in shared]
    logits = (a.logits[shared] + np.asarray([logit_of[image.path] for image in images])) / 2
    return population_report(
        f"blend of {first.name} and {second.name}",
        "out-of-fold",
        images,
        sigmoid(logits),
        FIXED_THRESHOLD,
        resamples=resamples,
        seed=seed,
        note=f"{len(shared)} cells scored by both",
    )


def read_population_report(cv_dir: Path) -> PopulationReport:
    return PopulationReport.model_validate_json((cv_dir / POPULATIONS_FILE).read_text())


def baseline_reports(
    images: Sequence[CellImage], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> list[PopulationReport]:
    """Cell area and mean grey, which need no training: what every row is read against."""
    return [
        population_report(
            scores.name, "baseline", images, scores.values, None, resamples=resamples, seed=seed
        )
        for scores in cell_appearance_baselines(images)
    ]


def served_model_report(
    model_dir: Path,
    images: Sequence[CellImage],
    *,
    unseen: Sequence[str],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PopulationReport:
    """An exported model as served, on the populations it never saw (`unseen`)."""
    from training.evaluation.scorers import score_model_dir

    chosen = [image for image in images if image.population in unseen]
    scores = score_model_dir(model_dir, chosen)
    return population_report(
        scores.name,
        "served",
        chosen,
        scores.values,
        scores.threshold,
        resamples=resamples,
        seed=seed,
        note="as served, at its own threshold; people it was trained on are left out",
    )


def _cell(interval: Interval | None) -> str:
    if interval is None or not np.isfinite(interval.value):
        return "—"
    return f"{interval.value:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def _at_threshold(figures: PopulationFigures) -> str:
    if figures.balanced_accuracy is None or figures.sensitivity is None:
        return "—"
    specificity = figures.specificity.value if figures.specificity else float("nan")
    return (
        f"{_cell(figures.balanced_accuracy)} ({figures.sensitivity.value:.2f} / {specificity:.2f})"
    )


def markdown_table(reports: Sequence[PopulationReport]) -> str:
    """One row per candidate and population; the rule score on each candidate's first row."""
    lines = [
        "| candidate | population | cells (people ALL/HEM) | ROC AUC [95%] | subject-level "
        "ROC AUC [95%] | balanced acc. [95%] (sens / spec) | rule score |",
        "|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        score = report.rule_score()
        for position, (population, figures) in enumerate(report.populations.items()):
            rule = f"**{score:.3f}**" if position == 0 and score is not None else ""
            lines.append(
                f"| {report.name if position == 0 else ''} | {population} | {figures.cells} "
                f"({figures.people_all}/{figures.people_hem}) | {_cell(figures.roc_auc)} | "
                f"{_cell(figures.subject_roc_auc)} | {_at_threshold(figures)} | {rule} |"
            )
    return "\n".join(lines)
