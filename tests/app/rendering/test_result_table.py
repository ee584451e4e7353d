import pytest

from app.core.domain.outcomes import Refusal, RefusalKind
from app.rendering.result_table import RESULT_COLUMNS, result_row, spreadsheet_safe


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("cell.png", "cell.png"),
        ("", ""),
    ],
)
def test_formulas_are_defused(text, safe):
    assert spreadsheet_safe(text) == safe


def test_a_refusal_row_names_its_kind_and_reason():
    row = result_row("=bad.png", Refusal(RefusalKind.UNSUPPORTED_TYPE, "unsupported"))
    assert row == {
        "filename": "'=bad.png",
        "status": "error",
        "error": "unsupported_type: unsupported",
    }
    assert set(row) <= set(RESULT_COLUMNS)


def test_the_api_says_a_refusal_by_its_status():
    from app.web.errors import as_status_and_reason

    row = result_row("bad.png", Refusal(RefusalKind.UNSUPPORTED_TYPE, "x"), as_status_and_reason)
    assert row["error"] == "415: x"


def test_an_answer_row_carries_its_state_and_keys():
    from app.core.domain.predictions import ModelRef, Prediction, Timings

    prediction = Prediction(
        label="ALL",
        probability_all=0.9,
        threshold=0.5,
        model=ModelRef(id="m", version="1"),
        warnings=[],
        timings_ms=Timings(decode=0, preprocess=0, inference=0, total=0),
        request_id="-r",
        image_sha256="a" * 64,
        assessable=False,
        state="not_assessable",
        sample_id="S-1",
    )
    row = result_row("c.png", prediction)
    assert set(row) == set(RESULT_COLUMNS) - {"error"}
    assert (row["assessable"], row["state"], row["sample_id"]) == ("false", "not_assessable", "S-1")
    assert row["request_id"] == "'-r"


def test_a_sample_row_carries_the_share_its_interval_and_its_readability():
    from app.core.blast_share import CellCalls, HeldOutCounts, estimate_blast_share
    from app.rendering.result_table import SAMPLE_COLUMNS, sample_row

    counts = HeldOutCounts(
        true_positives=800, false_negatives=200, true_negatives=750, false_positives=250, source=""
    )
    share = estimate_blast_share(CellCalls(12, 12, 6, 0, 0), counts)
    row = sample_row("=LAB-1", share, 0.61)
    assert list(row) == SAMPLE_COLUMNS
    assert row["sample_id"] == "'=LAB-1"
    assert row["blast_like_share_observed"] == "0.5000"
    assert float(row["ci95_low"]) <= float(row["blast_like_share_corrected"])
    assert row["interval_readable"] == "false"
    assert int(row["more_cells_needed"]) > 0
    assert row["sample_score"] == "0.6100"
    empty = sample_row("S", estimate_blast_share(CellCalls(2, 0, 0, 0, 0), counts), None)
    assert empty["blast_like_share_corrected"] == empty["interval_readable"] == ""
    assert "no assessable cell" in empty["note"]
