"""Intervals from resampling whole samples, against a direct computation; the Wilson path for
fewer than 5 samples; how many more samples would narrow an interval."""

import math

import numpy as np
import pytest

from app.core.local_rates import (
    paired_gain,
    rate_figures,
    sample_draws,
    wilson,
)

# Per-sample counts: tp, fp, tn, fn.
SAMPLES = np.array(
    [
        [8, 1, 20, 2],
        [0, 3, 30, 0],
        [12, 0, 5, 4],
        [5, 5, 10, 5],
        [0, 0, 25, 0],
        [9, 2, 3, 1],
        [3, 1, 14, 0],
    ]
)


def direct_percentiles(samples: np.ndarray, resamples: int, seed: int) -> dict[str, tuple]:
    """The bootstrap written out draw by draw: each draw picks as many samples as there are,
    with replacement, sums their counts, and takes each rate."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(samples), size=(resamples, len(samples)))
    values = {"sensitivity": [], "specificity": [], "balanced_accuracy": []}
    for draw in picks:
        tp = fp = tn = fn = 0
        for index in draw:
            tp += samples[index][0]
            fp += samples[index][1]
            tn += samples[index][2]
            fn += samples[index][3]
        sensitivity = tp / (tp + fn) if tp + fn else math.nan
        specificity = tn / (tn + fp) if tn + fp else math.nan
        values["sensitivity"].append(sensitivity)
        values["specificity"].append(specificity)
        values["balanced_accuracy"].append((sensitivity + specificity) / 2)
    return {
        name: tuple(np.percentile([v for v in found if not math.isnan(v)], [2.5, 97.5]))
        for name, found in values.items()
    }


def test_the_resampled_intervals_are_the_direct_bootstrap():
    figures = rate_figures(SAMPLES, resamples=400, seed=7)
    expected = direct_percentiles(SAMPLES, 400, 7)
    for name, (low, high) in expected.items():
        rate = getattr(figures, name)
        assert rate.method == "sample_resampling"
        assert rate.low == pytest.approx(low, abs=1e-12)
        assert rate.high == pytest.approx(high, abs=1e-12)
    total = SAMPLES.sum(axis=0)
    assert figures.sensitivity.value == total[0] / (total[0] + total[3])
    assert figures.specificity.value == total[2] / (total[2] + total[1])
    assert figures.sensitivity.cells == total[0] + total[3]
    assert figures.sensitivity.samples == 5  # the two samples without ALL cells do not count
    assert figures.specificity.samples == 7


def test_the_draws_pick_as_many_samples_as_there_are():
    draws = sample_draws(7, 50, seed=1)
    assert draws.shape == (50, 7)
    assert (draws.sum(axis=1) == 7).all()


def test_people_who_differ_widen_the_interval_beyond_a_cells_count():
    """Ten people with 100 cells each whose sensitivities spread from 0.5 to 1: the resampled
    interval carries that spread, which Wilson on the 1000 cells ignores."""
    samples = np.array([[50 + 5 * i, 0, 10, 50 - 5 * i] for i in range(10)])
    figures = rate_figures(samples, resamples=2000)
    naive_low, naive_high = wilson(int(samples[:, 0].sum()), int(samples[:, [0, 3]].sum()))
    resampled_width = figures.sensitivity.high - figures.sensitivity.low
    assert resampled_width > 2 * (naive_high - naive_low)
    # The standard error of a ratio of sums over people (the delta method), which the
    # percentile interval should roughly match.
    hits, cells = samples[:, 0], samples[:, 0] + samples[:, 3]
    share = hits.sum() / cells.sum()
    n = len(samples)
    error = math.sqrt(n / (n - 1) * ((hits - share * cells) ** 2).sum()) / cells.sum()
    assert resampled_width == pytest.approx(2 * 1.96 * error, rel=0.25)


def test_fewer_than_five_samples_take_the_wilson_path_and_say_so():
    samples = np.array([[8, 2, 10, 2], [0, 0, 10, 0]])
    figures = rate_figures(samples)
    assert figures.method == "wilson_cells"
    assert "fewer than 5" in figures.note
    assert figures.sensitivity.method == "wilson_cells"
    # 8 of 10: the Wilson score interval, computed by hand.
    low, high = figures.sensitivity.low, figures.sensitivity.high
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    specificity = figures.specificity
    assert specificity.value == 20 / 22
    assert (specificity.low, specificity.high) == wilson(20, 22)
    balanced = figures.balanced_accuracy
    assert balanced.low == pytest.approx((low + specificity.low) / 2)
    # More samples are needed, at least the 5 that resampling takes.
    assert figures.sensitivity.more_samples_for_0_05 >= 3


def test_no_cells_of_a_class_leaves_its_rate_empty():
    figures = rate_figures(np.array([[0, 1, 9, 0]] * 6))
    assert figures.sensitivity.value is None
    assert figures.sensitivity.low is None
    assert figures.sensitivity.more_samples_for_0_05 is None
    assert figures.balanced_accuracy.value is None
    assert figures.specificity.value == 0.9


def test_more_samples_needed_shrinks_as_one_over_the_square_root():
    few = rate_figures(SAMPLES)
    needed = few.sensitivity.more_samples_for_0_05
    half = (few.sensitivity.high - few.sensitivity.low) / 2
    assert half > 0.05
    assert needed == math.ceil(5 * (half / 0.05) ** 2) - 5
    many = rate_figures(np.repeat(SAMPLES, 200, axis=0))
    assert many.sensitivity.more_samples_for_0_05 == 0


def test_a_paired_gain_on_the_same_samples():
    before = SAMPLES
    after = SAMPLES.copy()
    after[:, 0] += after[:, 3]  # every missed ALL cell now found
    after[:, 3] = 0
    gain = paired_gain(before, after, resamples=500)
    assert gain.value > 0
    assert 0 < gain.low <= gain.value <= gain.high
    same = paired_gain(before, before, resamples=200)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_a_rate_whose_cells_come_from_fewer_than_five_samples_takes_the_wilson_path():
    """A week of six samples where one patient holds every ALL cell: resampling samples gave
    sensitivity an interval of no width (78% (78-78) on the page); now it is a Wilson interval
    on that patient's cells, marked, while specificity is resampled as before."""
    samples = np.array([[7, 0, 0, 2]] + [[0, 3, 17, 0]] * 5)
    figures = rate_figures(samples)
    sensitivity = figures.sensitivity
    assert sensitivity.samples == 1
    assert sensitivity.method == "wilson_cells"
    assert (sensitivity.low, sensitivity.high) == wilson(7, 9)
    assert sensitivity.high - sensitivity.low > 0.3
    assert figures.specificity.method == "sample_resampling"
    assert figures.balanced_accuracy.method == "wilson_cells"
    assert figures.method == "wilson_cells"
    assert "sensitivity from fewer than 5 samples" in figures.note
