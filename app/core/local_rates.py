"""Sensitivity, specificity and balanced accuracy from per-sample counts, with 95% intervals
that treat a sample as a person: cells of one person are not independent, so the intervals
come from resampling whole samples (percentile bootstrap). With fewer than 5 samples a
bootstrap has too few people to say anything, and a Wilson interval on cells is given instead,
marked as such (it takes cells as independent and is too narrow when people differ).

Only per-sample counts are needed (true and false positives and negatives per sample), which
the records' database gives by GROUP BY; `training adapt` uses the same draws for the gain of
an adapted model over its parent (`paired_gain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.core.domain.performance import IntervalMethod, Rate

LEVEL = 0.95
Z = 1.959963984540054
MIN_SAMPLES_FOR_RESAMPLING = 5
RESAMPLES = 1000
SEED = 20190417
TARGET_HALF_WIDTH = 0.05
TP, FP, TN, FN = range(4)
WILSON_CAVEAT = (
    "which take cells as independent and are too narrow when people differ (balanced accuracy: "
    "the mean of the two rates' bounds)"
)


def sample_draws(samples: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """How often each sample is drawn in each resample: (resamples, samples) counts, each row
    a bootstrap draw of as many samples as there are, with replacement."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, samples, size=(resamples, samples))
    flat = (drawn + np.arange(resamples)[:, None] * samples).ravel()
    return np.bincount(flat, minlength=resamples * samples).reshape(resamples, samples)


def _ratio(hits: np.ndarray, total: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity and balanced accuracy of summed counts (..., 4); NaN where a
    class has no cell."""
    sensitivity = _ratio(counts[..., TP], counts[..., TP] + counts[..., FN])
    specificity = _ratio(counts[..., TN], counts[..., TN] + counts[..., FP])
    return {
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": (sensitivity + specificity) / 2,
    }


def percentile_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    low, high = np.percentile(finite, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(low), float(high)


def wilson(hits: int, total: int) -> tuple[float | None, float | None]:
    """The Wilson score interval of hits / total."""
    if total == 0:
        return None, None
    share = hits / total
    centre = (share + Z**2 / (2 * total)) / (1 + Z**2 / total)
    half = Z * math.sqrt(share * (1 - share) / total + Z**2 / (4 * total**2)) / (1 + Z**2 / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RateFigures:
    sensitivity: Rate
    specificity: Rate
    balanced_accuracy: Rate
    method: str | None
    note: str


def rate_figures(
    per_sample: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
) -> RateFigures:
    """The three rates of per-sample counts (samples, 4) with their intervals."""
    per_sample = per_sample[per_sample.sum(axis=1) > 0]
    total = per_sample.sum(axis=0)
    values = rates(total)
    positives = per_sample[:, TP] + per_sample[:, FN]
    negatives = per_sample[:, TN] + per_sample[:, FP]
    cells = {
        "sensitivity": (int(total[TP] + total[FN]), int((positives > 0).sum())),
        "specificity": (int(total[TN] + total[FP]), int((negatives > 0).sum())),
        "balanced_accuracy": (int(total.sum()), len(per_sample)),
    }
    # Each rate resamples the samples that hold its cells: a rate whose cells come from fewer
    # than 5 samples (one patient's ALL cells in a week of normal samples) would otherwise get
    # a bootstrap interval of next to no width; it gets a Wilson interval, marked as such.
    drawn = (
        rates(sample_draws(len(per_sample), resamples, seed) @ per_sample)
        if len(per_sample) >= MIN_SAMPLES_FOR_RESAMPLING
        else {}
    )
    resampled = {
        name: bool(drawn) and cells[name][1] >= MIN_SAMPLES_FOR_RESAMPLING
        for name in ("sensitivity", "specificity")
    }
    resampled["balanced_accuracy"] = all(resampled.values())
    intervals = {
        name: percentile_interval(drawn[name])
        if resampled[name]
        else wilson(int(total[hit]), int(total[hit] + total[miss]))
        for name, hit, miss in (("sensitivity", TP, FN), ("specificity", TN, FP))
    }
    if resampled["balanced_accuracy"]:
        intervals["balanced_accuracy"] = percentile_interval(drawn["balanced_accuracy"])
    else:
        sensitivity, specificity = intervals["sensitivity"], intervals["specificity"]
        both = None not in (*sensitivity, *specificity)
        intervals["balanced_accuracy"] = (
            (
                ((sensitivity[0] or 0) + (specificity[0] or 0)) / 2,
                ((sensitivity[1] or 0) + (specificity[1] or 0)) / 2,
            )
            if both
            else (None, None)
        )
    methods: dict[str, IntervalMethod | None] = {
        name: "sample_resampling" if resampled[name] else "wilson_cells" if cells[name][1] else None
        for name in cells
    }
    resampling = (
        f"95% intervals from {resamples} resamples of whole samples (a sample stands for a person)"
    )
    method: str | None
    if all(resampled.values()):
        method, note = "sample_resampling", resampling
    elif drawn:
        few = [name for name in ("sensitivity", "specificity") if not resampled[name]]
        method = "wilson_cells"
        note = (
            f"{resampling}, but {' and '.join(few)} from fewer than "
            f"{MIN_SAMPLES_FOR_RESAMPLING} samples holding such cells: 95% Wilson intervals on "
            f"cells there, {WILSON_CAVEAT}"
        )
    else:
        method = "wilson_cells" if len(per_sample) else None
        note = (
            f"only {len(per_sample)} reviewed sample(s), fewer than "
            f"{MIN_SAMPLES_FOR_RESAMPLING}: 95% Wilson intervals on cells, {WILSON_CAVEAT}"
        )
    figures = {}
    for name, value in values.items():
        low, high = intervals[name]
        denominator, samples = cells[name]
        figures[name] = Rate(
            value=None if np.isnan(value) else float(value),
            low=low,
            high=high,
            cells=denominator,
            samples=samples,
            method=methods[name] if low is not None else None,
            more_samples_for_0_05=more_samples_needed(
                float(value), low, high, samples, denominator, methods[name]
            ),
        )
    return RateFigures(**figures, method=method, note=note)


def more_samples_needed(
    value: float,
    low: float | None,
    high: float | None,
    samples: int,
    cells: int,
    method: str | None,
) -> int | None:
    """Roughly how many more samples like these would narrow the interval to ±0.05: a resampled
    interval shrinks as one over the square root of the samples; a Wilson interval says only
    how many cells a binomial share needs, turned into samples of the same size (and at least
    the 5 that resampling needs)."""
    if low is None or high is None or samples == 0 or np.isnan(value):
        return None
    half = (high - low) / 2
    if half <= TARGET_HALF_WIDTH:
        return 0
    if method == "sample_resampling":
        return math.ceil(samples * (half / TARGET_HALF_WIDTH) ** 2) - samples
    share = min(max(float(value), 0.05), 0.95)
    cells_needed = Z**2 * share * (1 - share) / TARGET_HALF_WIDTH**2
    per_sample = cells / samples
    return max(MIN_SAMPLES_FOR_RESAMPLING, math.ceil(cells_needed / per_sample)) - samples


@dataclass(frozen=True)
class Gain:
    value: float
    low: float
    high: float


def paired_gain(
    before: np.ndarray, after: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
) -> Gain:
    """Balanced accuracy after minus before on the same cells, with a 95% interval from the same
    resamples of whole samples for both (the difference is paired): per-sample counts (samples,
    4) of the two rules on the same cells."""
    draws = sample_draws(len(before), resamples, seed)
    difference = (
        rates(draws @ after)["balanced_accuracy"] - rates(draws @ before)["balanced_accuracy"]
    )
    low, high = percentile_interval(difference)
    value = (
        rates(after.sum(axis=0))["balanced_accuracy"]
        - rates(before.sum(axis=0))["balanced_accuracy"]
    )
    return Gain(
        float(value), float("nan") if low is None else low, float("nan") if high is None else high
    )
