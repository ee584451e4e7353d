"""Sample ids shaped like a name and a birth date were once accepted and kept; after that was
fixed, so were other spellings of the date, and a name without a date said nothing."""

import pytest

from app.core.sample_ids import (
    DEFAULT_SAMPLE_ID_PATTERN,
    SampleIdError,
    SampleIdPolicy,
    looks_like_a_name_with_a_date,
)

# Each of these was once answered 200.
OTHER_SPELLINGS = [
    "JANEDOE19620314",  # one run of capitals, compact date
    "janedoe-1962-03-14",  # one run of small letters
    "Jane.Doe.1962-3-14",  # one-digit month
    "Jane-Doe-62-03-14",  # two-digit year first
    "jane.doe.3.14.1962",  # month first
    "Jane.Doe.14Mar1962",  # a month's abbreviation
    "Jane Doe March 14 1962",  # a month's name, month first
    "Jane.Doe.1962-Mar-14",
    "Jane.Doe.03141962",  # compact, month first
    "Jane_Doe_031462",  # six digits, month first
    "Jane.Doe.14.3.62",  # one-digit month, two-digit year
]
ACCESSION_NUMBERS = [
    "20241201-003",
    "S24-12345",
    "HEM-LAB-2024-001",
    "HEM20241201",
    "BM-2024-12-01-007",
    "PB-24-0312",
]

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


@pytest.mark.parametrize("sample_id", OTHER_SPELLINGS)
def test_a_birth_date_in_any_spelling_beside_a_name_is_refused(sample_id):
    problem = SampleIdPolicy().problem(sample_id)
    assert problem is not None
    assert "no name beside a date" in problem  # the rule it broke
    assert "S24-12345" in problem  # and what a lab number looks like


@pytest.mark.parametrize("sample_id", ACCESSION_NUMBERS)
def test_date_based_accession_numbers_and_lab_words_stay_accepted(sample_id):
    policy = SampleIdPolicy()
    assert policy.problem(sample_id) is None
    assert policy.warning(sample_id) is None


def test_a_name_without_a_date_is_accepted_with_a_warning():
    policy = SampleIdPolicy()
    assert policy.problem("SMITH_JOHN_MRN4471234") is None
    assert "could be a person's name" in policy.warning("SMITH_JOHN_MRN4471234")
    assert policy.warning("LAB-42") is None


def test_the_pattern_stays_the_outer_limit():
    lab = SampleIdPolicy(r"S\d{2}-\d{5}")
    assert lab.problem("20241201-003") is not None  # no name, but not the lab's shape
    problem = lab.problem("HEM-LAB-2024-001")
    assert "LEUKOLENS_SAMPLE_ID_PATTERN" in problem
    assert "S24-12345" in problem


def test_the_pattern_is_matched_in_full_and_configurable():
    assert SampleIdPolicy().problem("../x") is not None
    assert SampleIdPolicy().problem("x" * 65) is not None
    lab = SampleIdPolicy(r"S\d{2}-\d{5}")
    assert lab.problem("S26-12345") is None
    assert "must match" in lab.problem("S26-12345-extra")
    assert "must match" in lab.problem("LAB-42")
    assert SampleIdPolicy().pattern == DEFAULT_SAMPLE_ID_PATTERN


def test_the_page_says_the_default_in_words_and_a_labs_pattern_as_it_is():
    assert SampleIdPolicy().in_words == "letters, digits, dots, dashes or underscores, up to 64"
    assert SampleIdPolicy(r"S\d{2}-\d{5}").in_words == r"matching S\d{2}-\d{5}"


def test_no_pattern_lets_a_name_with_a_birth_date_through():
    anything = SampleIdPolicy(r".+")
    assert anything.problem("Jane Doe 1962-03-14") is not None
    assert anything.problem("Jane Doe") is None


def test_a_broken_pattern_is_refused_at_once():
    with pytest.raises(ValueError, match="sample id pattern"):
        SampleIdPolicy("[unclosed")
