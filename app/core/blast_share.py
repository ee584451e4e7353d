"""A sample's share of blast-like cells, corrected for the model's known errors, with an interval.

A lab reads a sample, not a cell. The share of cells the model calls ALL-like is biased by its
errors (with specificity 0.75 a quarter of normal cells are called ALL-like), so the share is
corrected with the Rogan-Gladen estimator, (observed + specificity - 1) / (sensitivity +
specificity - 1), clipped to [0, 1]. Sensitivity and specificity are the model card's rates on
patients it never saw (its evaluation on people outside its training data, or out of fold on
people of other acquisition batches, at the served threshold) where the card has them, else
its out-of-fold rates on its own training batch; the answer names which (`rates`, `source`).
They come with the counts they came from; the 95% interval is a seeded Monte Carlo posterior
over the binomial uncertainty of the sample's cells, the Beta posteriors of those counts and
the spread of sensitivity and specificity between the card's held-out subjects.

Cells a reviewer decided count as the reviewer said and are not corrected: the model's errors
do not apply to them. A share of blast-like cells is a research aid, never a diagnosis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.domain.reviews import ReviewRecord
from app.core.domain.samples import BlastShare, SamplePrediction
from app.core.manifest import UNSEEN_SUBJECTS_PROTOCOL, Evaluation, ModelManifest

HELD_OUT_PROTOCOL_START = "out-of-fold predictions"
RATES_UNSEEN = "unseen_patients"
RATES_HELD_OUT = "held_out_training_subjects"
LEVEL = 0.95
READABLE_WIDTH = 0.3
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 20190417
# Jeffreys prior for a share from a count: good frequentist coverage, defined at 0 and n.
JEFFREYS = 0.5
GRID = np.linspace(0.0, 1.0, 201)


@dataclass(frozen=True)
class HeldOutCounts:
    """The confusion matrix of held-out cells at the served threshold, and where it came from."""

    true_positives: int
    false_negatives: int
    true_negatives: int
    false_positives: int
    source: str
    rates: str = RATES_HELD_OUT
    """RATES_UNSEEN (patients outside the training data or its batch) or RATES_HELD_OUT."""
    # Each held-out ALL subject's sensitivity and each HEM subject's specificity: a patient's
    # own rates differ from the pooled ones, and the interval must carry that spread.
    subject_sensitivities: tuple[float, ...] = ()
    subject_specificities: tuple[float, ...] = ()

    @property
    def sensitivity(self) -> float:
        return self.true_positives / (self.true_positives + self.false_negatives)

    @property
    def specificity(self) -> float:
        return self.true_negatives / (self.true_negatives + self.false_positives)


def held_out_counts(manifest: ModelManifest) -> HeldOutCounts | None:
    """The card's error rates at its served threshold on patients it never saw where it has
    them (what a new sample is), else its out-of-fold rates; None when it has neither."""
    unseen = [e for e in manifest.evaluations if e.protocol.startswith(UNSEEN_SUBJECTS_PROTOCOL)]
    held_out = [e for e in manifest.evaluations if e.protocol.startswith(HELD_OUT_PROTOCOL_START)]
    for rates, evaluations in ((RATES_UNSEEN, unseen), (RATES_HELD_OUT, held_out)):
        for evaluation in evaluations:
            counts = _counts_at_threshold(manifest, evaluation, rates)
            if counts is not None:
                return counts
    return None


def _counts_at_threshold(
    manifest: ModelManifest, evaluation: Evaluation, rates: str
) -> HeldOutCounts | None:
    matrix = evaluation.metrics.get("confusion_matrix")
    threshold = evaluation.metrics.get("threshold")
    if not isinstance(matrix, list) or not isinstance(threshold, float | int):
        return None
    if not math.isclose(float(threshold), manifest.threshold.value, abs_tol=1e-9):
        return None  # measured at another threshold than the one that makes the calls
    (tn, fp), (fn, tp) = matrix
    if tp + fn == 0 or tn + fp == 0:
        return None
    labels = {s.subject: s.label for s in manifest.training_data.subjects}
    accuracy = evaluation.per_subject_accuracy
    return HeldOutCounts(
        true_positives=tp,
        false_negatives=fn,
        true_negatives=tn,
        false_positives=fp,
        source=f"model card {manifest.id} v{manifest.version}: {evaluation.protocol}",
        rates=rates,
        subject_sensitivities=tuple(
            v for k, v in accuracy.items() if _subject_label(k, labels) == "ALL"
        ),
        subject_specificities=tuple(
            v for k, v in accuracy.items() if _subject_label(k, labels) == "HEM"
        ),
    )


def _subject_label(subject: str, known: Mapping[str, str]) -> str:
    """A subject's class from the card, else from C-NMC's naming (H<n>: a healthy donor)."""
    if subject in known:
        return known[subject]
    return "HEM" if subject.startswith("H") else "ALL"


@dataclass(frozen=True)
class CellCalls:
    """What a sample's cells were called: by the model (not reviewed) and by reviewers."""

    cells: int
    model_called: int
    model_called_all: int
    reviewed: int
    reviewed_all: int

    @property
    def assessable(self) -> int:
        return self.model_called + self.reviewed


def rogan_gladen(observed: float, sensitivity: float, specificity: float) -> float:
    """The true share that would give this observed share, clipped to [0, 1]."""
    youden = sensitivity + specificity - 1.0
    if youden <= 0:
        raise ValueError("sensitivity + specificity must exceed 1 for a correction")
    return min(1.0, max(0.0, (observed + specificity - 1.0) / youden))


def estimate_blast_share(
    calls: CellCalls,
    counts: HeldOutCounts | None,
    *,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
    note: str = "",
) -> BlastShare:
    n = calls.assessable
    observed = (calls.model_called_all + calls.reviewed_all) / n if n else None
    base: dict[str, object] = {
        "observed": observed,
        "n_cells": calls.cells,
        "n_assessable": n,
        "n_reviewed": calls.reviewed,
        "n_reviewed_all": calls.reviewed_all,
        "n_model_called": calls.model_called,
        "level": LEVEL,
        "readable_width": READABLE_WIDTH,
    }
    if counts is not None:
        base |= {
            "sensitivity": counts.sensitivity,
            "specificity": counts.specificity,
            "sensitivity_counts": [counts.true_positives, counts.false_negatives],
            "specificity_counts": [counts.true_negatives, counts.false_positives],
            "source": counts.source,
            "rates": counts.rates,
        }
    if n == 0:
        return BlastShare(**base, note=note or "no assessable cell: no share can be given")
    needs_correction = calls.model_called > 0
    if needs_correction and (counts is None or counts.sensitivity + counts.specificity <= 1):
        return BlastShare(
            **base,
            note=note or "no held-out sensitivity and specificity for the model: uncorrected",
        )
    corrected_model = (
        rogan_gladen(
            calls.model_called_all / calls.model_called, counts.sensitivity, counts.specificity
        )
        if counts is not None and needs_correction
        else 0.0
    )
    corrected = (calls.reviewed_all + calls.model_called * corrected_model) / n
    low, high = _posterior_interval(calls, counts, draws=draws, seed=seed)
    # The posterior interval can miss the plug-in estimate when few cells were counted; it is
    # widened to hold it rather than reported without it.
    low, high = min(low, corrected), max(high, corrected)
    width = high - low
    too_wide = width > READABLE_WIDTH
    return BlastShare(
        **base,
        corrected=corrected,
        ci_low=low,
        ci_high=high,
        interval_width=width,
        too_wide=too_wide,
        more_cells_needed=(
            cells_to_narrow(calls, counts) if too_wide and counts is not None else None
        ),
        note=note,
    )


def _posterior_interval(
    calls: CellCalls, counts: HeldOutCounts | None, *, draws: int, seed: int
) -> tuple[float, float]:
    """Shortest interval holding 95% of Monte Carlo draws of the sample's true share.

    Each draw takes sensitivity and specificity from the Beta posteriors of the card's counts,
    spread by how much they varied between its held-out subjects (a patient is not the pool),
    then the share of the model-called cells from its posterior on a grid (uniform prior; the
    chance of an ALL-like call is (1 - specificity) + share * (sensitivity + specificity - 1)),
    and the share of the reviewed cells from a Jeffreys Beta. The posterior respects [0, 1], so
    an observed share below the false-positive rate gives an interval at 0, not an empty one;
    the shortest interval (not the equal-tailed one) can hold 0 or 1 themselves.
    """
    rng = np.random.default_rng(seed)
    n = calls.assessable
    total = np.zeros(draws)
    if calls.model_called and counts is not None:
        sensitivity = patient_rates(
            rng, counts.true_positives, counts.false_negatives, counts.subject_sensitivities, draws
        )
        specificity = patient_rates(
            rng, counts.true_negatives, counts.false_positives, counts.subject_specificities, draws
        )
        youden = np.maximum(sensitivity + specificity - 1.0, 1e-6)
        called_all = calls.model_called_all
        called_other = calls.model_called - called_all
        chance = (1.0 - specificity)[:, None] + GRID[None, :] * youden[:, None]
        chance = np.clip(chance, 1e-12, 1.0 - 1e-12)
        log_likelihood = called_all * np.log(chance) + called_other * np.log1p(-chance)
        weights = np.exp(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
        cumulative = np.cumsum(weights, axis=1)
        chosen = (cumulative < rng.random(draws)[:, None] * cumulative[:, -1:]).sum(axis=1)
        total += calls.model_called * GRID[np.minimum(chosen, GRID.size - 1)]
    if calls.reviewed:
        reviewed_share = rng.beta(
            calls.reviewed_all + JEFFREYS, calls.reviewed - calls.reviewed_all + JEFFREYS, draws
        )
        total += calls.reviewed * reviewed_share
    return shortest_interval(total / n, LEVEL)


def between_subject_variance(rates: tuple[float, ...]) -> float:
    """Spread of the per-subject rates (unbiased); 0 with fewer than two subjects."""
    return float(np.var(rates, ddof=1)) if len(rates) >= 2 else 0.0


def patient_rates(
    rng: np.random.Generator, hits: int, misses: int, subject_rates: tuple[float, ...], draws: int
) -> np.ndarray:
    """A new patient's rate: the pooled rate from the Beta posterior of its counts, then the
    patient's own around it, Beta with the spread measured between held-out subjects."""
    pooled = rng.beta(hits + 1, misses + 1, draws)
    spread = between_subject_variance(subject_rates)
    mean = hits / (hits + misses)
    if spread <= 1e-9:
        return pooled
    concentration = max(mean * (1 - mean) / spread - 1.0, 1.0)
    return rng.beta(pooled * concentration + 1e-9, (1 - pooled) * concentration + 1e-9)


def shortest_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    ordered = np.sort(samples)
    inside = math.ceil(level * ordered.size)
    widths = ordered[inside - 1 :] - ordered[: ordered.size - inside + 1]
    start = int(np.argmin(widths))
    return float(ordered[start]), float(ordered[start + inside - 1])


def cells_to_narrow(calls: CellCalls, counts: HeldOutCounts) -> int | None:
    """Roughly how many more model-called cells would bring the interval to the readable width.

    Delta method on the Rogan-Gladen estimator: its variance is (var(observed) + share^2
    var(sensitivity) + (1 - share)^2 var(specificity)) / J^2, J = sensitivity + specificity - 1;
    only var(observed) shrinks with more cells. None: the card's own uncertainty alone is wider.
    """
    sensitivity, specificity = counts.sensitivity, counts.specificity
    youden = sensitivity + specificity - 1.0
    apparent = (calls.model_called_all + JEFFREYS) / (calls.model_called + 2 * JEFFREYS)
    share = rogan_gladen(apparent, sensitivity, specificity)
    z = 1.959963984540054
    budget = (READABLE_WIDTH / (2 * z)) ** 2 * youden**2
    budget -= share**2 * (
        _beta_variance(counts.true_positives, counts.false_negatives)
        + between_subject_variance(counts.subject_sensitivities)
    )
    budget -= (1 - share) ** 2 * (
        _beta_variance(counts.true_negatives, counts.false_positives)
        + between_subject_variance(counts.subject_specificities)
    )
    if budget <= 0:
        return None
    needed = math.ceil(apparent * (1 - apparent) / budget)
    return max(1, needed - calls.assessable)


def _beta_variance(successes: int, failures: int) -> float:
    a, b = successes + 1, failures + 1
    return a * b / ((a + b) ** 2 * (a + b + 1))


def cell_calls(
    predictions: Sequence[SamplePrediction], decisions: Sequence[ReviewRecord]
) -> CellCalls:
    """The latest decision on an image replaces the model's call; not assessable drops it.

    The model's call is its label (which side of the served threshold), indeterminate included:
    that is the call its held-out sensitivity and specificity were measured on.
    """
    latest = {d.image_sha256: d.decision for d in decisions}  # one image is one cell
    model_called = model_called_all = reviewed = reviewed_all = 0
    for prediction in predictions:
        decision = latest.get(prediction.image_sha256)
        if decision is not None:
            if decision != "not_assessable":
                reviewed += 1
                reviewed_all += decision == "ALL"
        elif prediction.assessable:
            model_called += 1
            model_called_all += prediction.label == "ALL"
    return CellCalls(
        cells=len(predictions),
        model_called=model_called,
        model_called_all=model_called_all,
        reviewed=reviewed,
        reviewed_all=reviewed_all,
    )


def sample_blast_share(
    predictions: Sequence[SamplePrediction],
    decisions: Sequence[ReviewRecord],
    card_for: Callable[[str], ModelManifest | None],
) -> BlastShare:
    """The sample's blast share, corrected with the card of the one model that scored it."""
    calls = cell_calls(predictions, decisions)
    decided = {d.image_sha256 for d in decisions}
    scored_by = {
        (p.model_id, p.model_version)
        for p in predictions
        if p.assessable and p.image_sha256 not in decided
    }
    if len(scored_by) > 1:
        names = ", ".join(f"{m} v{v}" for m, v in sorted(scored_by))
        return estimate_blast_share(
            calls, None, note=f"cells scored by several models ({names}): no single correction"
        )
    if not scored_by:
        return estimate_blast_share(calls, None)
    ((model_id, model_version),) = scored_by
    manifest = card_for(model_id)
    if manifest is None:
        return estimate_blast_share(calls, None, note=f"model {model_id} is no longer served")
    if manifest.version != model_version:
        return estimate_blast_share(
            calls,
            None,
            note=f"cells scored by {model_id} v{model_version}; the served card is "
            f"v{manifest.version}: its figures do not apply",
        )
    return estimate_blast_share(calls, held_out_counts(manifest))


def sample_score(predictions: Sequence[SamplePrediction]) -> float | None:
    """Mean calibrated probability of the assessable cells: for ranking samples, not a share."""
    probabilities = [p.probability_all for p in predictions if p.assessable]
    return sum(probabilities) / len(probabilities) if probabilities else None
