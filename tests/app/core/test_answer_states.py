import pytest

from app.core.answer_states import NOT_ASSESSABLE_CODES, answer_state, is_assessable
from app.core.quality_checks import QualityWarning


def warnings(*codes):
    return [QualityWarning(code=code, message="m") for code in codes]


@pytest.mark.parametrize(
    ("label", "codes", "state"),
    [
        ("ALL", (), "suggests_all"),
        ("HEM", (), "suggests_normal"),
        ("ALL", ("touches_border", "blurry"), "suggests_all"),
        ("HEM", ("uncertain",), "indeterminate"),
        ("ALL", ("uncertain", "no_background"), "not_assessable"),
        ("HEM", ("no_cell",), "not_assessable"),
        ("ALL", ("multiple_objects",), "not_assessable"),
    ],
)
def test_states(label, codes, state):
    assert answer_state(label, warnings(*codes)) == state
    assert is_assessable(warnings(*codes)) == (state != "not_assessable")


def test_the_not_assessable_codes_are_real_warning_codes():
    for code in NOT_ASSESSABLE_CODES:
        QualityWarning(code=code, message="valid")
