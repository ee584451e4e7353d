"""How a model does on patients it never saw: C-NMC subjects outside its training data.

Fold-1 cross-validation (14 subjects, 3 of them HEM, one acquisition batch) scored every
candidate about 0.9; on other patients they scored about 0.6. This measurement decides between
candidates (docs/model-selection.md), so it reports only what a few dozen cells of a few dozen
subjects support: intervals from resampling whole subjects, each part of the data on its own
(the training-fold patients resemble fold 1, the preliminary-test patients do not), every
subject, and two baselines computed from the images alone (cell area, mean brightness) that a
model has to beat to have learned more than those cues.

Never fit, tune or choose a threshold on these figures: then they stop measuring new patients.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from training.data.dataset_index import (
    LABEL_ALL,
    LABEL_HEM,
    LABEL_NAMES,
    PRELIM_FOLD,
    CellImage,
    hash_images,
    list_extra_root,
    remove_duplicates,
)
from training.evaluation.scorers import Scores, cell_appearance_baselines
from training.metrics.subject_resampling import (
    AtThreshold,
    Interval,
    metric_interval,
    roc_auc,
    subject_resamples,
)

PART_ALL = "all"
PART_TRAINING_FOLDS = "training_folds"
PART_PRELIM = "preliminary_test"
PARTS = (PART_ALL, PART_TRAINING_FOLDS, PART_PRELIM)
PART_TITLES = {
    PART_ALL: "all",
    PART_TRAINING_FOLDS: "training-fold part",
    PART_PRELIM: "preliminary-test part",
}
DEFAULT_RESAMPLES = 2000


def part_of(image: CellImage) -> str:
    return PART_PRELIM if image.fold == PRELIM_FOLD else PART_TRAINING_FOLDS


@dataclass(frozen=True)
class ExternalData:
    images: tuple[CellImage, ...]
    prelim_listed: int
    prelim_missing: int
    duplicates_removed: int

    def part(self, name: str) -> list[int]:
        """Positions of the images in a part (`all` is every image)."""
        return [i for i, image in enumerate(self.images) if name in (PART_ALL, part_of(image))]


def index_external(root: Path) -> ExternalData:
    """Cells of the official training folds (`training_data/fold_*/{all,hem}`) and of the
    preliminary test set under `root`, de-duplicated by pixels across both."""
    extra = list_extra_root(root)
    deduplicated = remove_duplicates(hash_images(extra.images))
    return ExternalData(
        images=deduplicated.images,
        prelim_listed=extra.prelim_listed,
        prelim_missing=extra.prelim_missing,
        duplicates_removed=deduplicated.duplicates_removed,
    )


class PartCounts(BaseModel):
    cells: int
    subjects_all: int
    subjects_hem: int
    roc_auc: Interval


class PartFigures(AtThreshold, PartCounts):
    """A part's counts and AUC, then its figures at the scorer's threshold."""


class SubjectRow(BaseModel):
    subject: str
    part: str
    label: str
    cells: int
    mean_score: float
    called_all: float | None
    accuracy: float | None


class ScorerReport(BaseModel):
    name: str
    kind: str
    threshold: float | None
    parts: dict[str, PartFigures]
    per_subject: list[SubjectRow]


class PairedComparison(BaseModel):
    model: str
    against: str
    roc_auc_difference: dict[str, Interval]


class ExternalReport(BaseModel):
    root: str
    protocol: str
    resamples: int
    seed: int
    cells: dict[str, int]
    subjects: dict[str, int]
    prelim_listed_in_csv: int
    prelim_missing: int
    duplicates_removed: int
    scorers: list[ScorerReport]
    paired: list[PairedComparison]

    def scorer(self, name: str) -> ScorerReport:
        return next(s for s in self.scorers if s.name == name)


def _per_subject(data: ExternalData, scores: Scores) -> list[SubjectRow]:
    positions: dict[str, list[int]] = defaultdict(list)
    for position, image in enumerate(data.images):
        positions[image.subject].append(position)
    rows = []
    for subject, members in sorted(positions.items()):
        first = data.images[members[0]]
        values = scores.values[members]
        called = None if scores.threshold is None else float((values >= scores.threshold).mean())
        correct = None if called is None else (called if first.label == LABEL_ALL else 1 - called)
        rows.append(
            SubjectRow(
                subject=subject,
                part=part_of(first),
                label=LABEL_NAMES[first.label],
                cells=len(members),
                mean_score=float(values.mean()),
                called_all=called,
                accuracy=correct,
            )
        )
    return rows


def evaluate_scores(
    data: ExternalData, scores: Scores, draws: dict[str, list[np.ndarray]]
) -> ScorerReport:
    labels = np.asarray([image.label for image in data.images])
    parts: dict[str, PartFigures] = {}
    for part, part_draws in draws.items():
        members = data.part(part)
        if not members:
            continue
        part_labels, part_scores = labels[members], scores.values[members]
        subjects = {(data.images[i].subject, data.images[i].label) for i in members}
        auc = metric_interval(roc_auc, part_labels, part_scores, part_draws)
        figures = {}
        if scores.threshold is not None:
            measured = AtThreshold.measure(part_labels, part_scores, scores.threshold, part_draws)
            figures = dict(measured)
        parts[part] = PartFigures(
            cells=len(members),
            subjects_all=sum(label == LABEL_ALL for _, label in subjects),
            subjects_hem=sum(label == LABEL_HEM for _, label in subjects),
            roc_auc=auc,
            **figures,
        )
    return ScorerReport(
        name=scores.name,
        kind=scores.kind,
        threshold=scores.threshold,
        parts=parts,
        per_subject=_per_subject(data, scores),
    )


def paired_comparison(
    data: ExternalData, first: Scores, second: Scores, draws: dict[str, list[np.ndarray]]
) -> PairedComparison:
    """AUC of `first` minus AUC of `second` on the same subject draws."""
    labels = np.asarray([image.label for image in data.images])
    differences: dict[str, Interval] = {}
    for part, part_draws in draws.items():
        members = data.part(part)
        if not members:
            continue
        y, a, b = labels[members], first.values[members], second.values[members]
        values = np.asarray([roc_auc(y[d], a[d]) - roc_auc(y[d], b[d]) for d in part_draws])
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan)
        differences[part] = Interval(
            value=roc_auc(y, a) - roc_auc(y, b), low=float(low), high=float(high)
        )
    return PairedComparison(model=first.name, against=second.name, roc_auc_difference=differences)


PROTOCOL = (
    "cells of C-NMC subjects outside the training data, scored as served; 95% intervals are "
    "the 2.5th and 97.5th percentiles over resamples of whole subjects (stratified by class), "
    "the same draws for every scorer, so differences are paired; threshold-dependent figures "
    "at each model's own threshold, chosen on its training data only"
)


def external_report(
    data: ExternalData,
    scorers: Sequence[Scores],
    *,
    root: Path,
    against: Scores | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> ExternalReport:
    """Every scorer and the image-only baselines on the same subject draws; with `against`,
    each model's AUC difference to it."""
    labels = np.asarray([image.label for image in data.images])
    subjects = [image.subject for image in data.images]
    draws: dict[str, list[np.ndarray]] = {}
    for part in PARTS:
        members = data.part(part)
        if members:
            local = subject_resamples(
                [subjects[i] for i in members], labels[members], resamples, seed
            )
            draws[part] = local
    everything = [
        *scorers,
        *([against] if against else []),
        *cell_appearance_baselines(data.images),
    ]
    paired = [paired_comparison(data, s, against, draws) for s in scorers] if against else []
    parts_present = [part for part in PARTS if part in draws]
    return ExternalReport(
        root=str(root),
        protocol=PROTOCOL,
        resamples=resamples,
        seed=seed,
        cells={part: len(data.part(part)) for part in parts_present},
        subjects={part: len({subjects[i] for i in data.part(part)}) for part in parts_present},
        prelim_listed_in_csv=data.prelim_listed,
        prelim_missing=data.prelim_missing,
        duplicates_removed=data.duplicates_removed,
        scorers=[evaluate_scores(data, s, draws) for s in everything],
        paired=paired,
    )
