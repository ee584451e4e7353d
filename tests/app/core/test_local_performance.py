"""The one function: per-sample rows in, every figure out, overall and per period."""

from app.core.domain.predictions import ModelRef
from app.core.local_performance import CountRow, local_performance, readiness


def row(sample, period, **counts) -> CountRow:
    return CountRow(
        sample_id=sample, period=period, reviewers=frozenset({f"Dr {sample}"}), **counts
    )


def test_figures_overall_and_per_period_from_the_same_rows():
    rows = [
        row(
            "A",
            "2026-01-01",
            tp=5,
            fn=1,
            tn=3,
            fp=1,
            confirmed=7,
            overruled=2,
            indeterminate_all=1,
            repeats=2,
        ),
        row("A", "2026-02-01", tp=2, tn=4, confirmed=6, unreviewed=3),
        row(
            "B",
            "2026-02-01",
            fp=2,
            tn=6,
            confirmed=5,
            overruled=2,
            indeterminate_hem=1,
            withdrawn=1,
        ),
    ]
    result = local_performance(rows, model=ModelRef(id="m", version="1"), reference=None)
    assert result.confusion.model_dump() == {"tp": 7, "fp": 3, "tn": 13, "fn": 1}
    assert result.cells == 24
    assert (result.samples, result.reviewers) == (2, 2)
    assert result.left_out.repeats == 2
    assert result.left_out.withdrawn == 1
    assert result.left_out.unreviewed == 3
    assert result.agreement.share_confirmed == 18 / 22
    assert result.agreement.indeterminate == 2
    assert result.sensitivity.value == 7 / 8
    assert result.sensitivity.method == "wilson_cells"  # two samples
    assert [p.period for p in result.by_period] == ["2026-01-01", "2026-02-01"]
    february = result.by_period[1]
    assert february.confusion.model_dump() == {"tp": 2, "fp": 2, "tn": 10, "fn": 0}
    assert february.samples == 2
    assert result.drift.note == "no reference on the card"
    assert result.adaptation.ready is False


def test_adapt_is_ready_at_20_samples_with_both_classes():
    mixed = [row(f"S{i}", "p", tp=3, tn=5) for i in range(20)]
    assert readiness(mixed, "cmd").ready is True
    assert readiness(mixed, "cmd").command == "cmd"
    assert readiness(mixed[:19], "cmd").ready is False
    normal_only = [row(f"S{i}", "p", tn=5) for i in range(25)]
    ready = readiness([*normal_only, row("X", "p", tp=2), row("Y", "p", fn=1)], "cmd")
    assert (ready.samples_with_all, ready.ready) == (2, False)
    assert ready.command is None
