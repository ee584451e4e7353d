"""A record names one person: blank, merged (a comma) and control-character names are refused
wherever a name enters."""

import pytest

from app.core.identities import (
    ANONYMOUS,
    SHARED_KEY,
    Identity,
    clean_reviewer_name,
    reviewer_name_problem,
)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "blank"),
        ("   ", "blank"),
        ("\t\n", "blank"),
        ("alice, bob", "comma"),
        ("Doe, Jane", "comma"),
        ("Dr\nMallory", "control"),
        ("Dr A\x00", "control"),
        ("Dr \u202eecila", "control"),  # right-to-left override: reads as someone else
        ("Dr\u200bA", "control"),  # zero-width space: two names that print the same
        ("x" * 101, "longer than 100"),
    ],
)
def test_a_name_that_is_not_one_readable_person_is_refused(name, reason):
    problem = reviewer_name_problem(name)
    assert problem is not None
    assert reason in problem
    with pytest.raises(ValueError, match=reason):
        clean_reviewer_name(name)


@pytest.mark.parametrize("name", ["Dr A", "A. Tech", "José Müller-Ørsted", "李医生", "O'Brien"])
def test_ordinary_names_pass_with_their_spaces_trimmed(name):
    assert reviewer_name_problem(name) is None
    assert clean_reviewer_name(f"  {name} ") == name


def test_only_a_key_or_a_sign_on_names_a_person():
    assert Identity("Dr A", "reviewer_key").names_a_person
    assert Identity("jdoe", "sso_header").names_a_person
    assert not SHARED_KEY.names_a_person
    assert not ANONYMOUS.names_a_person
    assert SHARED_KEY.describe() == "the shared API key"
    assert Identity("Dr A", "reviewer_key").describe() == "'Dr A'"
