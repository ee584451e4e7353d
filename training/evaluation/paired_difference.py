"""A candidate against the default on the same people: the difference in the selection rule's
score, with an interval from resampling whole people once for both.

Two candidates' intervals overlap almost always on a few dozen people, yet their difference can
still be clear, because both are read on the same cells: each draw resamples the people of each
external population (stratified by class) and scores both candidates on that draw. A candidate
replaces the default only when this interval lies above 0 (docs/model-selection.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from training.data.predictions import Predictions
from training.evaluation.population_report import DEFAULT_RESAMPLES, RULE_POPULATIONS
from training.fit.artifacts import CvDir
from training.metrics.subject_resampling import Interval, roc_auc, subject_resamples


class PairedDifference(BaseModel):
    candidate: str
    reference: str
    cells: int
    """Cells both scored: the difference is read on these alone."""
    rule_score: Interval
    """Candidate minus reference, mean ROC AUC over the rule's populations."""
    populations: dict[str, Interval]
    """Candidate minus reference, cell-level ROC AUC, each rule population on its own."""

    def clears(self) -> bool:
        return self.rule_score.low > 0


def _shared_scores(
    candidate: Predictions, reference: Predictions
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(subjects, populations, labels, candidate logits, reference logits) on shared cells."""
    reference_logit = {
        image.path: logit for image, logit in zip(reference.images, reference.logits, strict=True)
    }
    shared = [i for i, image in enumerate(candidate.images) if image.path in reference_logit]
    images = [candidate.images[i] for i in shared]
    return (
        [image.subject for image in images],
        [image.population for image in images],
        np.asarray([image.label for image in images]),
        candidate.logits[shared],
        np.asarray([reference_logit[image.path] for image in images]),
    )


def paired_difference(
    candidate: Path, reference: Path, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> PairedDifference:
    """`candidate`'s out-of-fold rule score minus `reference`'s, both cv directories."""
    subjects, populations, labels, ours, theirs = _shared_scores(
        CvDir(candidate).read_out_of_fold(), CvDir(reference).read_out_of_fold()
    )
    members = {
        population: np.flatnonzero([p == population for p in populations])
        for population in RULE_POPULATIONS
    }
    missing = [population for population, cells in members.items() if cells.size == 0]
    if missing:
        raise ValueError(f"{candidate} and {reference} share no cell of {', '.join(missing)}")
    differences: dict[str, np.ndarray] = {}
    observed: dict[str, float] = {}
    for offset, (population, cells) in enumerate(members.items()):
        draws = subject_resamples(
            [subjects[i] for i in cells], labels[cells], resamples, seed + offset
        )
        y, a, b = labels[cells], ours[cells], theirs[cells]
        observed[population] = roc_auc(y, a) - roc_auc(y, b)
        differences[population] = np.asarray(
            [roc_auc(y[d], a[d]) - roc_auc(y[d], b[d]) for d in draws]
        )
    rule_draws = np.mean(list(differences.values()), axis=0)
    return PairedDifference(
        candidate=candidate.name,
        reference=reference.name,
        cells=len(labels),
        rule_score=_interval(float(np.mean(list(observed.values()))), rule_draws),
        populations={p: _interval(observed[p], differences[p]) for p in members},
    )


def _interval(value: float, draws: np.ndarray) -> Interval:
    finite = draws[np.isfinite(draws)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan)
    return Interval(value=value, low=float(low), high=float(high))


def markdown_table(differences: list[PairedDifference]) -> str:
    """One row per candidate: the paired differences against the reference, and the verdict."""
    lines = [
        "| candidate | against | cells | "
        + " | ".join(f"{p} ROC AUC difference [95%]" for p in RULE_POPULATIONS)
        + " | rule score difference [95%] | clears the default |",
        "|---|---|---|" + "---|" * len(RULE_POPULATIONS) + "---|---|",
    ]
    for row in differences:
        cells = " | ".join(_signed(row.populations[p]) for p in RULE_POPULATIONS)
        lines.append(
            f"| {row.candidate} | {row.reference} | {row.cells} | {cells} | "
            f"{_signed(row.rule_score)} | {'yes' if row.clears() else 'no'} |"
        )
    return "\n".join(lines)


def _signed(interval: Interval) -> str:
    return f"{interval.value:+.3f} [{interval.low:+.2f}, {interval.high:+.2f}]"
