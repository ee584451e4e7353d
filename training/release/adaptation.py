"""Adapt a served model to a lab's own patients from the lab's reviewed cells.

The bundled models come from 14 people of one batch; on other populations they lose most of
what they learned (docs/model-selection.md). A lab's reviewed cells are labelled cells of its
own population. Two strengths, as clinical systems meet site shift:

- recalibration: temperature, bias and threshold refitted on the parent's logits. The ranking
  (ROC AUC) cannot change; sensitivity and specificity move to the site's population.
- head refit: the last linear layer refitted on the frozen network's features, with an L2 pull
  toward the parent's weights, so that a few dozen cells move the head only as far as they
  must. The graph is the parent's with two initialisers replaced: nothing else changes.

Every figure is measured on subjects left out of the fit (leave-one-subject-out; grouped
folds when there are many), and the result is a new model directory with its own id, naming
its parent: the parent is never replaced in place. Torch-free: onnxruntime, scipy, sklearn.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from app.core.classifier import OnnxCellClassifier, logit, sigmoid
from app.core.local_rates import paired_gain, rate_figures
from app.core.manifest import (
    AdaptationGain,
    Evaluation,
    HeldOutRates,
    ModelManifest,
    RateInterval,
    load_manifest,
)
from app.core.model_registry import STORE_INDEX, record_model
from training.metrics.subject_resampling import (
    Interval,
    metric_interval,
    roc_auc,
    subject_resamples,
    threshold_metrics,
)
from training.release.card_inputs import AdaptedFrom, HeldOutResult
from training.release.model_card import adapted_card, write_card
from training.release.site_refit import (
    FittedRule,
    ParentOutputs,
    Strength,
    fit,
    parent_outputs,
    replace_head,
)
from training.release.site_reviews import (
    AdaptationError,
    ReviewedCell,
    check_enough_subjects,
    read_records,
    read_reviews,
)

MINIMUM_SUBJECTS_PER_CLASS = 3
"""Leave-one-subject-out must leave at least two subjects of each class in every fit, or a
fit could learn one person as "the" HEM (or ALL) class; hence three per class at the least."""
MAX_FOLDS = 5
RESAMPLES = 2000


def held_out_splits(subjects: Sequence[str], labels: np.ndarray) -> list[np.ndarray]:
    """Held-out positions per fit: subject-grouped folds that each hold out subjects of both
    classes. Holding out one subject alone shifts each fit's class balance against the very
    class held out, which scored a recalibration (that cannot change the ranking) at ROC AUC
    0.04 on 11 subjects: an artefact of the protocol, not of the model."""
    per_class = [len({s for s, y in zip(subjects, labels, strict=True) if y == c}) for c in (0, 1)]
    folds = StratifiedGroupKFold(n_splits=min(MAX_FOLDS, *per_class), shuffle=True, random_state=0)
    return [held for _, held in folds.split(np.zeros(len(labels)), labels, groups=subjects)]


def per_sample_counts(subjects: Sequence[str], labels: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """(samples, 4) true and false positives and negatives per sample, as the performance
    figures count them."""
    order = sorted(set(subjects))
    index = {subject: i for i, subject in enumerate(order)}
    counts = np.zeros((len(order), 4), np.int64)
    for subject, label, call in zip(subjects, labels, calls, strict=True):
        kind = (0 if call else 3) if label == 1 else (1 if call else 2)  # tp, fp, tn, fn
        counts[index[subject], kind] += 1
    return counts


def held_out_rates(counts: np.ndarray, resamples: int) -> HeldOutRates:
    """The local rates of held-out calls, by the one function the performance page uses."""
    figures = rate_figures(counts, resamples=resamples)
    return HeldOutRates(
        **{
            name: RateInterval(value=rate.value, low=rate.low, high=rate.high)
            for name in ("sensitivity", "specificity", "balanced_accuracy")
            for rate in [getattr(figures, name)]
        },
        samples=int((counts.sum(axis=1) > 0).sum()),
        cells=int(counts.sum()),
        method=figures.method,
    )


def _figures(
    labels: np.ndarray,
    probabilities: np.ndarray,
    calls: np.ndarray,
    draws: list[np.ndarray],
    subjects: Sequence[str],
) -> tuple[dict[str, Interval], dict[str, float | int | list[list[int]]]]:
    """The figures with their intervals, and as a card's evaluation holds them."""
    figures = {"roc_auc": metric_interval(roc_auc, labels, probabilities, draws)}
    for name, metric in threshold_metrics(0.5).items():  # calls are 0 or 1
        figures[name] = metric_interval(metric, labels, calls.astype(float), draws)
    metrics: dict[str, float | int | list[list[int]]] = {
        "cells": len(labels),
        "subjects_all": len({s for s, y in zip(subjects, labels, strict=True) if y == 1}),
        "subjects_hem": len({s for s, y in zip(subjects, labels, strict=True) if y == 0}),
    }
    for name, interval in figures.items():
        metrics[name] = interval.value
        metrics[f"{name}_low"] = interval.low
        metrics[f"{name}_high"] = interval.high
    return figures, metrics


def evaluate_held_out(
    parent: ParentOutputs,
    classifier: OnnxCellClassifier,
    cells: Sequence[ReviewedCell],
    strength: Strength,
    *,
    head_l2: float | None = None,
    resamples: int = RESAMPLES,
) -> HeldOutResult:
    """The parent as served against the adaptation fitted without each held-out subject."""
    labels = np.asarray([c.label for c in cells])
    subjects = [c.subject for c in cells]
    every = np.arange(len(cells))
    margins = np.zeros(len(cells))
    splits = held_out_splits(subjects, labels)
    for held in splits:
        fit_rows = np.setdiff1d(every, held)
        rule = fit(
            strength, parent, fit_rows, labels[fit_rows], head_l2, [subjects[i] for i in fit_rows]
        )
        # Each fit's held-out scores relative to its own threshold, so that the fits' scores
        # can be ranked together.
        margins[held] = logit(rule.probability(held)) - logit(np.asarray(rule.threshold))
    calls = margins >= 0
    served = sigmoid(classifier.calibrated_logits(parent.logits))
    served_calls = served >= classifier.manifest.threshold.value
    draws = subject_resamples(subjects, labels, resamples, seed=0)
    before_figures, before = _figures(labels, served, served_calls, draws, subjects)
    # A recalibration keeps the parent's ranking: its ROC AUC is the parent's by construction,
    # while pooling fits with different thresholds would only measure their spread.
    ranking = parent.logits if strength == "recalibration" else margins
    after_figures, after = _figures(labels, ranking, calls, draws, subjects)
    protocol = (
        f"{len(splits)} subject-grouped folds of the reviewed cells, each holding out subjects "
        "of both classes, scored by the adaptation fitted on the other folds (its threshold "
        "chosen on those); ROC AUC "
        + (
            "of the parent's logits (a recalibration keeps the ranking)"
            if strength == "recalibration"
            else "over the held-out scores relative to each fit's threshold"
        )
        + "; "
        f"95% intervals from {resamples} resamples of whole subjects"
    )
    better = after_figures["balanced_accuracy"].value > before_figures["balanced_accuracy"].value
    if strength == "head_refit":
        better = better and after_figures["roc_auc"].value >= before_figures["roc_auc"].value
    # The gain on the same held-out samples, with an interval from the same resamples of whole
    # samples for both (paired): adopt only when it lies above 0.
    counts_before = per_sample_counts(subjects, labels, served_calls)
    counts_after = per_sample_counts(subjects, labels, calls)
    gain = paired_gain(counts_before, counts_after, resamples=resamples)
    return HeldOutResult(
        protocol=protocol,
        before=Evaluation(
            protocol=f"parent as served, on held-out subjects: {protocol}", metrics=before
        ),
        after=Evaluation(protocol=f"{strength}, held out: {protocol}", metrics=after),
        better=better,
        recommended=bool(np.isfinite(gain.low) and gain.low > 0),
        gain=AdaptationGain(value=gain.value, low=gain.low, high=gain.high, resamples=resamples),
        local_before=held_out_rates(counts_before, resamples),
        local_after=held_out_rates(counts_after, resamples),
    )


def adapt_model(
    parent_dir: Path,
    reviews: Path | str,
    images: Path,
    out_dir: Path,
    *,
    strength: Strength,
    model_id: str,
    version: str = "1",
    minimum_subjects_per_class: int = MINIMUM_SUBJECTS_PER_CLASS,
    head_l2: float | None = None,
    command: str = "",
    resamples: int = RESAMPLES,
    from_records: bool = False,
    since: float | None = None,
    until: float | None = None,
) -> ModelManifest:
    """A new model directory adapted from `parent_dir`; refuses to touch an existing one.
    `from_records`: `reviews` is the records' database (a URL), read as the performance page
    counts it for the parent's version (`since`/`until`: seconds since the epoch); `head_l2`
    None: chosen by inner sample-grouped folds."""
    if out_dir.exists():
        raise AdaptationError(f"{out_dir} exists: an adapted model never replaces another")
    classifier = OnnxCellClassifier(parent_dir)
    if from_records:
        parent_card = classifier.manifest
        cells = read_records(
            reviews, images, parent_card.id, parent_card.version, since=since, until=until
        )
    else:
        cells = read_reviews(reviews, images)
    check_enough_subjects(cells, minimum_subjects_per_class)
    parent = parent_outputs(classifier, [c.path for c in cells])
    labels = np.asarray([c.label for c in cells])
    held_out = evaluate_held_out(
        parent, classifier, cells, strength, head_l2=head_l2, resamples=resamples
    )
    final = fit(
        strength, parent, np.arange(len(cells)), labels, head_l2, [c.subject for c in cells]
    )
    manifest = classifier.manifest
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _write_graphs(parent_dir, staging, manifest, strength, final)
        adapted = adapted_card(
            manifest,
            staging,
            AdaptedFrom(
                cells=cells,
                reviews=reviews,
                strength=strength,
                final=final,
                held_out=held_out,
                minimum_subjects_per_class=minimum_subjects_per_class,
            ),
            model_id=model_id,
            version=version,
            command=command,
        )
        write_card(adapted, staging)
        load_manifest(staging)  # the graphs are the files the card describes
        staging.rename(out_dir)
        # Served beside the others, never as the default: a lab makes it the default itself,
        # and the store refuses to for one whose card says not recommended.
        if (out_dir.parent / STORE_INDEX).is_file():
            record_model(out_dir.parent, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return adapted


def _write_graphs(
    parent_dir: Path, staging: Path, manifest: ModelManifest, strength: Strength, final: FittedRule
) -> None:
    """The parent's graphs, with the refitted head where the head was refitted."""
    graphs = [manifest.onnx_file]
    graphs += [manifest.explain_onnx_file] if manifest.explain_onnx_file else []
    for name in graphs:
        if strength == "head_refit":
            replace_head(parent_dir / name, staging / name, final)
        else:
            shutil.copy2(parent_dir / name, staging / name)
