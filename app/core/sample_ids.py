"""What a sample id may be: a lab number, never a patient's name or birth date.

Sample ids are kept in the records for as long as the retention allows and appear in URLs,
logs and exported tables, so an id such as `Jane.Doe.1962-03-14` would spread a patient's
identity everywhere. One policy decides, for the API (query, path and JSON body) and for the
command line alike, in two rules:

1. The lab's pattern (`LEUKOLENS_SAMPLE_ID_PATTERN`) is the outer limit: the id must match it
   in full.
2. No name beside a date, whatever the pattern: an id holding a date in any spelling (compact
   `19620314` or `620314`, separated with one- or two-digit parts `1962-3-14`, `14.03.62`,
   day or month first `3.14.1962`, a month's name or abbreviation `14Mar1962`, `March 14 1962`)
   together with letters that could be a person's name is refused.

Letters could be a name when, once the date and the lab's own words (`LAB`, `HEM`, `BM`,
`SAMPLE`, `MRN`... see LAB_WORDS) are set aside, two or more words remain (camel case counts a
word per capital: `JaneDoe` is two), or one word of six letters or more (a first and last name
run together: `JANEDOE`). A date alone (`20241201-003`), letters alone and lab words with a date
(`HEM-LAB-2024-001`, `LAB-2026-12-07-3`) are lab numbers. An id whose letters could be a name
but that holds no date (`SMITH_JOHN_MRN4471234`) is accepted with a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_SAMPLE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
DEFAULT_SAMPLE_ID_IN_WORDS = "letters, digits, dots, dashes or underscores, up to 64"
LAB_NUMBERS_ONLY = "lab numbers only, never a patient's name or birth date"
LAB_NUMBER_EXAMPLES = "S24-12345, 20241201-003 or HEM-LAB-2024-001"
NAME_BESIDE_A_DATE = "no name beside a date"
NAME_WORD_LETTERS = 6
# Words a lab writes into its numbers: never taken for a name.
LAB_WORDS = frozenset({
    "lab", "labs", "hem", "heme", "hema", "haem", "all", "aml", "cll", "cml", "mds", "bm", "pb",
    "csf", "cbc", "fcm", "facs", "flow", "cyto", "path", "onc", "sample", "samples", "specimen",
    "spec", "smear", "slide", "slides", "blood", "marrow", "cell", "cells", "case", "acc", "mrn",
    "id", "no", "nr", "run", "batch", "plate", "well", "site", "ward", "clinic", "study",
    "control", "ctrl", "qc", "test", "patient", "pt",
})  # fmt: skip

_SEPARATOR = r"[-._/ ]"
_YEAR = r"(?:19|20)\d{2}"
_SHORT_YEAR = r"\d{2}"
_ANY_YEAR = rf"(?:{_YEAR}|{_SHORT_YEAR})"
_DAY = r"(?:0[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0[1-9]|1[0-2])"
_LOOSE_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_LOOSE_MONTH = r"(?:0?[1-9]|1[0-2])"
_MONTH_NAME = (
    r"(?<![a-z])(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
    r"aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])"
)
_S = _SEPARATOR
_S_OPT = f"{_SEPARATOR}?"
# Each spelling of a date with a valid month and day, standing apart from other digits.
DATE = re.compile(
    r"(?<!\d)(?:"
    # compact: 19620314, 14031962, 03141962, 620314, 140362, 031462
    rf"{_YEAR}{_MONTH}{_DAY}|{_DAY}{_MONTH}{_YEAR}|{_MONTH}{_DAY}{_YEAR}"
    rf"|{_SHORT_YEAR}{_MONTH}{_DAY}|{_DAY}{_MONTH}{_SHORT_YEAR}|{_MONTH}{_DAY}{_SHORT_YEAR}"
    # separated, parts of one or two digits: 1962-3-14, 62-03-14, 14.3.1962, 3.14.62
    rf"|{_ANY_YEAR}{_S}{_LOOSE_MONTH}{_S}{_LOOSE_DAY}"
    rf"|{_LOOSE_DAY}{_S}{_LOOSE_MONTH}{_S}{_ANY_YEAR}"
    rf"|{_LOOSE_MONTH}{_S}{_LOOSE_DAY}{_S}{_ANY_YEAR}"
    # a month's name: 14Mar1962, 14-March-62, Mar 14 1962, 1962-Mar-14
    rf"|{_LOOSE_DAY}{_S_OPT}{_MONTH_NAME}{_S_OPT}{_ANY_YEAR}"
    rf"|{_MONTH_NAME}{_S_OPT}{_LOOSE_DAY}{_S}{_ANY_YEAR}"
    rf"|{_MONTH_NAME}{_S_OPT}{_LOOSE_DAY}{_YEAR}"
    rf"|{_YEAR}{_S_OPT}{_MONTH_NAME}{_S_OPT}{_LOOSE_DAY}"
    r")(?!\d)",
    re.IGNORECASE,
)
LETTERS = re.compile(r"[^\W\d_]+")
_CAMEL_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[^\W\d_A-Z]+|[^\W\d_]+")


class SampleIdError(ValueError):
    """The id is refused; the message says why, for the client to read."""


def name_words(text: str) -> list[str]:
    """The words of letters that are not the lab's own: a run in camel case is a word per
    capital after a small letter (`JaneDoe`: two, `LAB`: one)."""
    found = []
    for run in LETTERS.findall(text):
        for word in _CAMEL_WORD.findall(run) if not run.isupper() else [run]:
            if word.lower() not in LAB_WORDS:
                found.append(word)
    return found


def words(text: str) -> int:
    """How many words of letters could be part of a name (lab words left out)."""
    return len(name_words(text))


def could_be_a_name(text: str) -> bool:
    """Two words or more, or one long enough to be a first and last name run together."""
    found = name_words(text)
    return len(found) >= 2 or any(len(word) >= NAME_WORD_LETTERS for word in found)


def without_dates(sample_id: str) -> tuple[str, bool]:
    """The id with every date replaced by a separator (a month's name is no name), and
    whether it held one."""
    rest, count = DATE.subn("-", sample_id)
    return rest, count > 0


def looks_like_a_name_with_a_date(sample_id: str) -> bool:
    """A date, in any spelling, and letters that could be a name beside it."""
    rest, dated = without_dates(sample_id)
    return dated and could_be_a_name(rest)


def looks_like_a_name(sample_id: str) -> bool:
    """Letters that could be a name, without a date: accepted, with a warning."""
    rest, dated = without_dates(sample_id)
    return not dated and could_be_a_name(rest)


@dataclass(frozen=True)
class SampleIdPolicy:
    """The deployment's sample-id rule; `pattern` is matched against the whole id."""

    pattern: str = DEFAULT_SAMPLE_ID_PATTERN
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"sample id pattern {self.pattern!r}: {error}") from None
        object.__setattr__(self, "_compiled", compiled)

    @property
    def in_words(self) -> str:
        """The pattern as the page tells a person: plain words for the default, the lab's
        pattern itself otherwise."""
        if self.pattern == DEFAULT_SAMPLE_ID_PATTERN:
            return DEFAULT_SAMPLE_ID_IN_WORDS
        return f"matching {self.pattern}"

    def problem(self, sample_id: str) -> str | None:
        """Why the id is refused (the rule it broke and what a lab number looks like), or
        None when it is accepted."""
        if looks_like_a_name_with_a_date(sample_id):
            return (
                f"refused by the rule '{NAME_BESIDE_A_DATE}': the id holds a date (in whatever "
                "spelling: 19620314, 1962-3-14, 14.03.62, 14Mar1962) beside letters that could "
                f"be a person's name. Sample ids are {LAB_NUMBERS_ONLY}: the lab's number, "
                f"such as {LAB_NUMBER_EXAMPLES}"
            )
        if self._compiled.fullmatch(sample_id) is None:
            return (
                "refused by the lab's pattern (LEUKOLENS_SAMPLE_ID_PATTERN): the id must match "
                f"{self.pattern} in full. Sample ids are {LAB_NUMBERS_ONLY}, such as "
                f"{LAB_NUMBER_EXAMPLES}"
            )
        return None

    def warning(self, sample_id: str) -> str | None:
        """What to tell about an accepted id whose letters could be a name, else None."""
        if not looks_like_a_name(sample_id):
            return None
        return (
            "the sample id has letters that could be a person's name; if they are, use the "
            f"lab's number instead (such as {LAB_NUMBER_EXAMPLES}): sample ids are kept in the "
            "records, logs and exports"
        )

    def check(self, sample_id: str) -> str:
        """The id itself when accepted; SampleIdError, saying why, otherwise."""
        problem = self.problem(sample_id)
        if problem is not None:
            raise SampleIdError(problem)
        return sample_id
