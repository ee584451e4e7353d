"""What a sample id may be: a lab number, never a patient's name or birth date.

Sample ids are kept in the records for as long as the retention allows and appear in URLs,
logs and exported tables, so an id such as `Jane.Doe.1962-03-14` would spread a patient's
identity everywhere. One policy decides, for the API (query, path and JSON body) and for the
command line alike: the id must fully match the deployment's pattern
(`LEUKOLENS_SAMPLE_ID_PATTERN`), and, whatever the pattern, an id holding a date together with
two or more words of letters is refused as shaped like a name with a birth date.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

DEFAULT_SAMPLE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
LAB_NUMBERS_ONLY = "lab numbers only, never a patient's name or birth date"

_SEPARATOR = r"[-._/ ]"
_DAY = r"(?:0[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0[1-9]|1[0-2])"
_LOOSE_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_LOOSE_MONTH = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)\d{2}"
# A date with a valid month and day, standing apart from other digits: 1962-03-14, 19620314,
# 14.03.1962, 14/03/62, 14031962, and the six-digit 140362 / 620314.
DATE = re.compile(
    rf"(?<!\d)(?:"
    rf"{_YEAR}{_SEPARATOR}?{_MONTH}{_SEPARATOR}?{_DAY}"
    rf"|{_LOOSE_DAY}{_SEPARATOR}{_LOOSE_MONTH}{_SEPARATOR}(?:{_YEAR}|\d{{2}})"
    rf"|{_DAY}{_MONTH}{_YEAR}"
    rf"|{_DAY}{_MONTH}\d{{2}}|\d{{2}}{_MONTH}{_DAY}"
    rf")(?!\d)"
)
LETTERS = re.compile(r"[^\W\d_]+")


class SampleIdError(ValueError):
    """The id is refused; the message says why, for the client to read."""


def words(text: str) -> int:
    """Runs of letters; a run in camel case counts a word per capital after a small letter
    (`JaneDoe`: two, `LAB`: one)."""
    return sum(
        1 + sum(a.islower() and b.isupper() for a, b in itertools.pairwise(run))
        for run in LETTERS.findall(text)
    )


def looks_like_a_name_with_a_date(sample_id: str) -> bool:
    """A date and at least two words of letters: `Jane.Doe.1962-03-14`, not `LAB-2026-12-07-3`."""
    return DATE.search(sample_id) is not None and words(sample_id) >= 2


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

    def problem(self, sample_id: str) -> str | None:
        """Why the id is refused, or None when it is accepted."""
        if looks_like_a_name_with_a_date(sample_id):
            return f"{LAB_NUMBERS_ONLY}: a date beside words is the shape of a name and birth date"
        if self._compiled.fullmatch(sample_id) is None:
            return f"{LAB_NUMBERS_ONLY}: the id must match {self.pattern}"
        return None

    def check(self, sample_id: str) -> str:
        """The id itself when accepted; SampleIdError, saying why, otherwise."""
        problem = self.problem(sample_id)
        if problem is not None:
            raise SampleIdError(problem)
        return sample_id
