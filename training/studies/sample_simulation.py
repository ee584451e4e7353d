"""Samples of known blast share built from held-out cells: is the corrected share right?

The server corrects a sample's share of ALL-like calls with the card's sensitivity and
specificity (app.core.blast_share). Here that estimator meets samples whose truth is known:

- from a cross-validation's out-of-fold predictions (`--cv`): each sample mixes the cells of
  one ALL subject and one HEM subject (a patient's own cells, drawn with replacement), and the
  threshold and the sensitivity/specificity counts come from the *other* subjects' out-of-fold
  predictions, so neither the model nor the correction has seen the sample's subjects;
- from a model card alone (`--card`): synthetic calls drawn with the card's own sensitivity and
  specificity, where the estimator's assumptions hold by construction (a check of the
  estimator, not of the model).

Each cell of a sample is a blast with the sample's true share as its chance (the share the
estimator aims at is the patient's, not the drawn cells'). Per sample size and true share: mean
error and mean absolute error of `corrected` (and of the uncorrected share, for comparison),
coverage and width of the 95% interval, and how often it was too wide to read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

import numpy as np
from sklearn import metrics as skm

from app.core.blast_share import CellCalls, HeldOutCounts, estimate_blast_share, held_out_counts
from app.core.manifest import load_manifest
from training.fit.artifacts import CvDir
from training.metrics.classification_metrics import best_balanced_accuracy_threshold

SIZES = (10, 20, 50, 100, 200)
SHARES = (0.0, 0.05, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class HeldOutCells:
    subjects: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray


def read_out_of_fold(cv_dir: Path) -> HeldOutCells:
    """The cross-validation's out-of-fold predictions (no torch needed to read them)."""
    predictions = CvDir(cv_dir).read_out_of_fold()
    return HeldOutCells(
        subjects=np.asarray(predictions.subjects),
        labels=predictions.labels,
        probabilities=predictions.probabilities,
    )


def subject_level_roc_auc(cells: HeldOutCells) -> dict[str, float | int]:
    """ROC AUC of each subject's mean probability (the sample score) over subjects."""
    subjects = sorted(set(cells.subjects.tolist()))
    means = [float(cells.probabilities[cells.subjects == s].mean()) for s in subjects]
    labels = [int(cells.labels[cells.subjects == s][0]) for s in subjects]
    return {
        "subjects_all": sum(labels),
        "subjects_hem": len(labels) - sum(labels),
        "subject_level_roc_auc": float(skm.roc_auc_score(labels, means)),
        "cell_level_roc_auc": float(skm.roc_auc_score(cells.labels, cells.probabilities)),
    }


def counts_without(cells: HeldOutCells, left_out: Sequence[str]) -> tuple[float, HeldOutCounts]:
    """Threshold (best balanced accuracy) and confusion counts on the other subjects only."""
    keep = ~np.isin(cells.subjects, list(left_out))
    labels, probabilities = cells.labels[keep], cells.probabilities[keep]
    subjects = cells.subjects[keep]
    threshold = best_balanced_accuracy_threshold(labels.tolist(), probabilities.tolist())
    called = probabilities >= threshold
    (true_negatives, false_positives), (false_negatives, true_positives) = skm.confusion_matrix(
        labels, called.astype(int), labels=[0, 1]
    )
    rates = {
        (subject, int(labels[subjects == subject][0])): float(
            np.mean(called[subjects == subject] == labels[subjects == subject])
        )
        for subject in sorted(set(subjects.tolist()))
    }
    return threshold, HeldOutCounts(
        true_positives=int(true_positives),
        false_negatives=int(false_negatives),
        true_negatives=int(true_negatives),
        false_positives=int(false_positives),
        source=f"out-of-fold predictions without subjects {', '.join(left_out)}",
        subject_sensitivities=tuple(rate for (_, label), rate in rates.items() if label == 1),
        subject_specificities=tuple(rate for (_, label), rate in rates.items() if label == 0),
    )


class _Tally:
    def __init__(self) -> None:
        self.errors: list[float] = []
        self.observed_errors: list[float] = []
        self.covered: list[bool] = []
        self.widths: list[float] = []
        self.too_wide: list[bool] = []

    def add(self, truth: float, calls: CellCalls, counts: HeldOutCounts, seed: int) -> None:
        share = estimate_blast_share(calls, counts, seed=seed)
        values = (share.corrected, share.observed, share.ci_low, share.ci_high)
        if any(value is None for value in values):
            raise RuntimeError(f"no corrected share for {calls}: {share.note}")
        corrected, observed, low, high = (float(value or 0.0) for value in values)
        self.errors.append(corrected - truth)
        self.observed_errors.append(observed - truth)
        self.covered.append(low <= truth <= high)
        self.widths.append(high - low)
        self.too_wide.append(share.too_wide)

    def row(self, size: int, truth: float) -> dict[str, float | int]:
        return {
            "cells": size,
            "true_share": truth,
            "samples": len(self.errors),
            "mean_error_corrected": float(np.mean(self.errors)),
            "mean_abs_error_corrected": float(np.mean(np.abs(self.errors))),
            "mean_abs_error_uncorrected": float(np.mean(np.abs(self.observed_errors))),
            "coverage": float(np.mean(self.covered)),
            "mean_interval_width": float(np.mean(self.widths)),
            "share_too_wide": float(np.mean(self.too_wide)),
        }


def simulate_held_out(
    cells: HeldOutCells,
    *,
    sizes: Sequence[int] = SIZES,
    shares: Sequence[float] = SHARES,
    repeats: int = 100,
    seed: int = 0,
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    all_subjects = sorted(set(cells.subjects[cells.labels == 1].tolist()))
    hem_subjects = sorted(set(cells.subjects[cells.labels == 0].tolist()))
    if not all_subjects or not hem_subjects or len(all_subjects) + len(hem_subjects) < 3:
        raise ValueError("needs ALL and HEM subjects, and others left to measure the errors on")
    pairs = {(a, h): counts_without(cells, [a, h]) for a in all_subjects for h in hem_subjects}
    probabilities = {
        s: cells.probabilities[cells.subjects == s] for s in all_subjects + hem_subjects
    }
    rows = []
    for size in sizes:
        for share in shares:
            tally = _Tally()
            for repeat in range(repeats):
                blasts = int(rng.binomial(size, share))
                a = all_subjects[rng.integers(len(all_subjects))]
                h = hem_subjects[rng.integers(len(hem_subjects))]
                threshold, counts = pairs[(a, h)]
                drawn = np.concatenate(
                    [
                        rng.choice(probabilities[a], blasts),
                        rng.choice(probabilities[h], size - blasts),
                    ]
                )
                called_all = int(np.sum(drawn >= threshold))
                tally.add(share, CellCalls(size, size, called_all, 0, 0), counts, repeat)
            rows.append(tally.row(size, share))
    return {
        "protocol": (
            "samples built from held-out subjects: one ALL and one HEM subject per sample, "
            "their out-of-fold cells drawn with replacement, each a blast with the true share "
            "as its chance; threshold "
            "(best balanced accuracy) and sensitivity/specificity counts from the out-of-fold "
            f"predictions of the other subjects; {repeats} samples per cell of the table"
        ),
        "subjects": {"all": all_subjects, "hem": hem_subjects},
        "rows": rows,
    }


def simulate_card(
    counts: HeldOutCounts,
    *,
    sizes: Sequence[int] = SIZES,
    shares: Sequence[float] = SHARES,
    repeats: int = 100,
    seed: int = 0,
) -> dict[str, object]:
    """Synthetic calls at the card's rates: each sample a patient with the sensitivity of one of
    the card's held-out ALL subjects and the specificity of one of its HEM subjects (the pooled
    rates where the card lists no subject)."""
    rng = np.random.default_rng(seed)
    sensitivities = counts.subject_sensitivities or (counts.sensitivity,)
    specificities = counts.subject_specificities or (counts.specificity,)
    rows = []
    for size in sizes:
        for share in shares:
            tally = _Tally()
            for repeat in range(repeats):
                blasts = int(rng.binomial(size, share))
                sensitivity = sensitivities[rng.integers(len(sensitivities))]
                specificity = specificities[rng.integers(len(specificities))]
                called_all = int(rng.binomial(blasts, sensitivity))
                called_all += int(rng.binomial(size - blasts, 1.0 - specificity))
                tally.add(share, CellCalls(size, size, called_all, 0, 0), counts, repeat)
            rows.append(tally.row(size, share))
    return {
        "protocol": (
            "SYNTHETIC calls drawn with the sensitivity of one of the card's held-out ALL "
            "subjects and the specificity of one of its HEM subjects per sample (its "
            f"{counts.source}); a check of the estimator where its assumptions hold, not a "
            f"measurement of the model; {repeats} samples per cell of the table"
        ),
        "rows": rows,
    }


class UnseenSubjectRow(TypedDict):
    """One unseen subject scored as one sample."""

    subject: str
    true_share: float
    cells: int
    sample_score: float
    observed: float | None
    corrected: float | None
    ci_low: float
    ci_high: float
    covered: bool


def unseen_subjects(model_dir: Path, data_root: Path) -> dict[str, object]:
    """Each unseen subject as a sample, scored as served: its true share is 1 (ALL) or 0 (HEM).

    The subject-level ROC AUC of the sample score, and per subject the corrected share with its
    interval against that truth. Every cell counts as assessable (the cells are segmented)."""
    from training.evaluation.external_evaluation import index_external
    from training.evaluation.scorers import score_model_dir

    manifest = load_manifest(model_dir, verify_checksum=False)
    counts = held_out_counts(manifest)
    if counts is None:
        raise ValueError(f"{model_dir}: the card has no out-of-fold confusion matrix")
    data = index_external(data_root)
    scores = score_model_dir(model_dir, data.images)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for position, image in enumerate(data.images):
        by_subject[image.subject].append(position)
    rows: list[UnseenSubjectRow] = []
    for subject, positions in sorted(by_subject.items()):
        probabilities = scores.values[positions]
        truth = float(data.images[positions[0]].label)
        called_all = int(np.sum(probabilities >= manifest.threshold.value))
        cells = len(positions)
        share = estimate_blast_share(CellCalls(cells, cells, called_all, 0, 0), counts)
        low, high = share.ci_low or 0.0, share.ci_high or 0.0
        rows.append(
            {
                "subject": subject,
                "true_share": truth,
                "cells": cells,
                "sample_score": float(probabilities.mean()),
                "observed": share.observed,
                "corrected": share.corrected,
                "ci_low": low,
                "ci_high": high,
                "covered": low <= truth <= high,
            }
        )
    labels = [row["true_share"] for row in rows]
    errors = np.asarray([float(row["corrected"] or 0.0) - row["true_share"] for row in rows])
    return {
        "protocol": (
            f"unseen subjects under {data_root}, each one sample (true share 1 for ALL "
            f"subjects, 0 for HEM), scored as served by {manifest.id} v{manifest.version}; "
            "corrected with the card's out-of-fold counts and between-subject spread"
        ),
        "subjects_all": int(sum(labels)),
        "subjects_hem": len(labels) - int(sum(labels)),
        "subject_level_roc_auc": float(
            skm.roc_auc_score(labels, [row["sample_score"] for row in rows])
        ),
        "cell_level_roc_auc": float(
            skm.roc_auc_score([image.label for image in data.images], scores.values)
        ),
        "median_cells": float(np.median([row["cells"] for row in rows])),
        "mean_abs_error_corrected": float(np.mean(np.abs(errors))),
        "mean_error_corrected": float(np.mean(errors)),
        "coverage": float(np.mean([row["covered"] for row in rows])),
        "subjects": rows,
    }


def run(
    *,
    cv_dir: Path | None,
    card_dir: Path | None,
    unseen_data: Path | None = None,
    repeats: int,
    seed: int,
    sizes: Sequence[int] = SIZES,
) -> dict[str, object]:
    report: dict[str, object]
    if cv_dir is not None:
        cells = read_out_of_fold(cv_dir)
        report = simulate_held_out(cells, sizes=sizes, repeats=repeats, seed=seed)
        report |= {"cv": str(cv_dir), **subject_level_roc_auc(cells)}
    elif card_dir is not None and unseen_data is not None:
        report = unseen_subjects(card_dir, unseen_data)
    elif card_dir is not None:
        manifest = load_manifest(card_dir, verify_checksum=False)
        counts = held_out_counts(manifest)
        if counts is None:
            raise ValueError(f"{card_dir}: the card has no out-of-fold confusion matrix")
        report = simulate_card(counts, sizes=sizes, repeats=repeats, seed=seed)
        report |= {"card": f"{manifest.id} v{manifest.version}"}
    else:
        raise ValueError("give --cv or --card")
    return report


def markdown(report: dict[str, object]) -> str:
    if "rows" not in report:
        return (
            f"{report['protocol']}\n\nsubject-level ROC AUC {report['subject_level_roc_auc']:.3f} "
            f"(cell level {report['cell_level_roc_auc']:.3f}) over {report['subjects_all']} ALL "
            f"and {report['subjects_hem']} HEM subjects, median {report['median_cells']:.0f} "
            f"cells each; corrected share: mean error {report['mean_error_corrected']:+.3f}, "
            f"mean abs error {report['mean_abs_error_corrected']:.3f}, interval coverage "
            f"{report['coverage']:.2f}"
        )
    lines = [
        str(report["protocol"]),
        "",
        "| cells | true share | mean error | mean abs error | abs error uncorrected | "
        "coverage | mean width | too wide |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_size: dict[int, list[dict[str, float]]] = defaultdict(list)
    for row in cast(list[dict[str, float]], report["rows"]):
        by_size[int(row["cells"])].append(row)
    for size, rows in by_size.items():
        for row in rows:
            lines.append(
                f"| {size} | {row['true_share']:.2f} | {row['mean_error_corrected']:+.3f} | "
                f"{row['mean_abs_error_corrected']:.3f} | {row['mean_abs_error_uncorrected']:.3f} "
                f"| {row['coverage']:.2f} | {row['mean_interval_width']:.2f} | "
                f"{row['share_too_wide']:.2f} |"
            )
    if "subject_level_roc_auc" in report:
        lines += [
            "",
            f"subject-level ROC AUC (mean probability per subject): "
            f"{report['subject_level_roc_auc']:.3f} over {report['subjects_all']} ALL and "
            f"{report['subjects_hem']} HEM subjects; cell-level: "
            f"{report['cell_level_roc_auc']:.3f}",
        ]
    return "\n".join(lines)
