"""Issue 30: sample ids shaped like a name and a birth date were accepted and kept."""

import pytest

from app.core.sample_ids import (
    DEFAULT_SAMPLE_ID_PATTERN,
    SampleIdError,
    SampleIdPolicy,
    looks_like_a_name_with_a_date,
)

LAB_NUMBERS = ["LAB-42", "S26-12345", "LAB-2026-12-07-3", "BM.2026.0042", "x", "20261207", "A1"]
NAMES_WITH_DATES = [
    "Jane.Doe.1962-03-14",  # YYYY-MM-DD
    "Doe_Jane_14.03.1962",  # DD.MM.YYYY
    "Jane-Doe-19620314",  # YYYYMMDD
    "Jane.Doe.14031962",  # DDMMYYYY
    "Jane_Doe_140362",  # DDMMYY
    "Jane_Doe_620314",  # YYMMDD
    "J.Doe.14-03-62",  # initials, two-digit year
    "JaneDoe19620314",  # camel case: two words
    "Mueller.Anna.1962-03-14",
]


@pytest.mark.parametrize("sample_id", LAB_NUMBERS)
def test_lab_numbers_are_accepted(sample_id):
    assert SampleIdPolicy().problem(sample_id) is None
    assert SampleIdPolicy().check(sample_id) == sample_id


@pytest.mark.parametrize("sample_id", NAMES_WITH_DATES)
def test_a_name_with_a_birth_date_is_refused_with_the_reason(sample_id):
    with pytest.raises(SampleIdError, match="lab numbers only, never a patient's name"):
        SampleIdPolicy().check(sample_id)


@pytest.mark.parametrize(
    "sample_id",
    [
        "Jane.Doe.1962-13-14",  # no month 13
        "Jane.Doe.19621332",  # nor day 32
        "Jane.Doe",  # words without a date
        "Doe-1962-03-14",  # one word and a date: as LAB-2026-12-07
        "LAB-20261207123",  # the date is part of a longer number
    ],
)
def test_only_a_valid_date_beside_two_words_looks_like_a_name(sample_id):
    assert not looks_like_a_name_with_a_date(sample_id)


def test_the_pattern_is_matched_in_full_and_configurable():
    assert SampleIdPolicy().problem("../x") is not None
    assert SampleIdPolicy().problem("x" * 65) is not None
    lab = SampleIdPolicy(r"S\d{2}-\d{5}")
    assert lab.problem("S26-12345") is None
    assert "must match" in lab.problem("S26-12345-extra")
    assert "must match" in lab.problem("LAB-42")
    assert SampleIdPolicy().pattern == DEFAULT_SAMPLE_ID_PATTERN


def test_no_pattern_lets_a_name_with_a_birth_date_through():
    anything = SampleIdPolicy(r".+")
    assert anything.problem("Jane Doe 1962-03-14") is not None
    assert anything.problem("Jane Doe") is None


def test_a_broken_pattern_is_refused_at_once():
    with pytest.raises(ValueError, match="sample id pattern"):
        SampleIdPolicy("[unclosed")
