from app.rendering.lab_results import (
    cell_counts,
    conclusion,
    estimate_interval,
    readable_estimate,
    why_no_estimate,
)
from tests.sample_reports import report, share


def test_the_conclusion_is_the_headline_in_one_sentence():
    text = conclusion(report(None, cells=3))
    assert text == (
        "Reviewer-confirmed ALL-like share: no assessable reviewed cell yet (3 cells in the "
        "sample, 3 undecided); a research and screening aid, not a diagnosis."
    )
    assert text.count(".") == 1


def test_the_counts_are_the_headlines():
    counts = {count.code: count.value for count in cell_counts(report(None, cells=3))}
    assert counts == {
        "cells-in-sample": 3,
        "cells-reviewed": 0,
        "cells-confirmed-all-like": 0,
        "cells-confirmed-normal": 0,
        "cells-not-assessable": 0,
    }


def test_an_estimate_is_read_only_where_its_interval_is_narrow_enough():
    readable = share(observed=0.5, corrected=0.42, ci_low=0.35, ci_high=0.5)
    wide = share(observed=0.5, corrected=0.42, ci_low=0.05, ci_high=0.9, too_wide=True)
    assert readable_estimate(readable) == 0.42
    assert readable_estimate(wide) is None
    assert estimate_interval(wide) == (0.05, 0.9)  # the interval says why, so it is kept
    assert why_no_estimate(wide) == (
        "not readable: its 95% interval is wider than 30 percentage points"
    )
    assert why_no_estimate(None) == "no estimate: no assessable cell"
    assert why_no_estimate(share(note="several models")) == "several models"
