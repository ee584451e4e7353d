import pytest

from app.result_table import RESULT_COLUMNS, result_row, spreadsheet_safe
from app.upload_checks import UploadRejectedError


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


def test_a_rejection_row_names_status_and_reason():
    row = result_row("=bad.png", UploadRejectedError(415, "unsupported"))
    assert row == {"filename": "'=bad.png", "status": "error", "error": "415: unsupported"}
    assert set(row) <= set(RESULT_COLUMNS)
