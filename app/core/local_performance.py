"""How the served model does on the lab's own patients: the one function that turns the
records' per-sample counts into the figures the API answers, the page shows, the Prometheus
gauges export and `training adapt` checks its readiness by.

Pure: it takes rows of counts (one per sample and period, as the records' database counts them
in SQL, app/records/performance_read.py) and the card's reference, and reads nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from app.core.card_reference import drift
from app.core.domain.performance import (
    AdaptationReadiness,
    Agreement,
    Confusion,
    Figures,
    LeftOut,
    LocalPerformance,
    PeriodFigures,
    Reference,
)
from app.core.domain.predictions import ModelRef
from app.core.local_rates import RESAMPLES, SEED, rate_figures

MIN_SAMPLES_TO_ADAPT = 20
MIN_SAMPLES_PER_CLASS_TO_ADAPT = 3
"""`training adapt`'s own minimum of samples (people) with cells of each class."""


@dataclass(frozen=True)
class CountRow:
    """Counts of one sample's cells scored in one period (see performance_read for what
    each count is)."""

    sample_id: str
    period: str
    reviewers: frozenset[str]
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    confirmed: int = 0
    overruled: int = 0
    indeterminate_all: int = 0
    indeterminate_hem: int = 0
    unreviewed: int = 0
    decided_not_assessable: int = 0
    not_assessable_answers: int = 0
    repeats: int = 0
    withdrawn: int = 0
    other_versions: int = 0


COUNT_FIELDS = tuple(
    name
    for name in CountRow.__dataclass_fields__
    if name not in {"sample_id", "period", "reviewers"}
)
CONFUSION = ("tp", "fp", "tn", "fn")


def per_sample_counts(rows: Iterable[CountRow]) -> np.ndarray:
    """(samples, 4) true and false positives and negatives per sample, periods summed."""
    by_sample: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(4, np.int64))
    for row in rows:
        by_sample[row.sample_id] += (row.tp, row.fp, row.tn, row.fn)
    if not by_sample:
        return np.zeros((0, 4), np.int64)
    return np.stack([by_sample[sample] for sample in sorted(by_sample)])


def _sums(rows: Sequence[CountRow]) -> dict[str, int]:
    return {name: sum(getattr(row, name) for row in rows) for name in COUNT_FIELDS}


def figures(
    rows: Sequence[CountRow],
    reference: Reference | None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Figures:
    """The figures of these rows' cells."""
    sums = _sums(rows)
    per_sample = per_sample_counts(rows)
    rates = rate_figures(per_sample, resamples=resamples, seed=seed)
    suggestions = sums["confirmed"] + sums["overruled"]
    indeterminate = sums["indeterminate_all"] + sums["indeterminate_hem"]
    named = {
        "sensitivity": rates.sensitivity,
        "specificity": rates.specificity,
        "balanced_accuracy": rates.balanced_accuracy,
    }
    return Figures(
        cells=sum(sums[name] for name in CONFUSION),
        samples=int((per_sample.sum(axis=1) > 0).sum()),
        reviewers=len(frozenset().union(*(row.reviewers for row in rows))),
        confusion=Confusion(**{name: sums[name] for name in CONFUSION}),
        left_out=LeftOut(**{name: sums[name] for name in LeftOut.model_fields}),
        **named,
        interval_note=rates.note,
        agreement=Agreement(
            suggestions=suggestions,
            confirmed=sums["confirmed"],
            overruled=sums["overruled"],
            share_confirmed=sums["confirmed"] / suggestions if suggestions else None,
            indeterminate=indeterminate,
            indeterminate_decided_all=sums["indeterminate_all"],
            indeterminate_decided_normal=sums["indeterminate_hem"],
        ),
        drift=drift(named, reference),
    )


def readiness(rows: Sequence[CountRow], command: str | None = None) -> AdaptationReadiness:
    """Whether `training adapt` has enough: 20 reviewed samples, 3 of them with ALL cells and
    3 with normal ones, and what it would use (the cells it finds the images of)."""
    per_sample = per_sample_counts(rows)
    per_sample = per_sample[per_sample.sum(axis=1) > 0]
    with_all = int(((per_sample[:, 0] + per_sample[:, 3]) > 0).sum())
    with_normal = int(((per_sample[:, 1] + per_sample[:, 2]) > 0).sum())
    ready = (
        len(per_sample) >= MIN_SAMPLES_TO_ADAPT
        and min(with_all, with_normal) >= MIN_SAMPLES_PER_CLASS_TO_ADAPT
    )
    return AdaptationReadiness(
        ready=ready,
        samples=len(per_sample),
        samples_with_all=with_all,
        samples_with_normal=with_normal,
        cells=int(per_sample.sum()),
        minimum_samples=MIN_SAMPLES_TO_ADAPT,
        minimum_samples_per_class=MIN_SAMPLES_PER_CLASS_TO_ADAPT,
        command=command if ready else None,
    )


def local_performance(
    rows: Sequence[CountRow],
    *,
    model: ModelRef,
    reference: Reference | None,
    reference_note: str = "",
    period: Literal["week", "month"] = "month",
    since: datetime | None = None,
    until: datetime | None = None,
    adapt_command: str | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> LocalPerformance:
    """Every figure of the selection, overall and per period, from its rows of counts."""
    periods: dict[str, list[CountRow]] = defaultdict(list)
    for row in rows:
        periods[row.period].append(row)
    overall = figures(rows, reference, resamples=resamples, seed=seed)
    return LocalPerformance(
        **overall.model_dump(),
        model=model,
        since=since,
        until=until,
        period=period,
        resamples=resamples,
        reference=reference,
        reference_note=reference_note,
        by_period=[
            PeriodFigures(
                period=start,
                **figures(periods[start], reference, resamples=resamples, seed=seed).model_dump(),
            )
            for start in sorted(periods)
        ],
        adaptation=readiness(rows, adapt_command),
    )
