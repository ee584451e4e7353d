"""Who someone is, as the records hold it: a reviewer's name, and the identity an upload or a
withdrawal belongs to.

A record names one person. A name that is blank, joins two names (a proxy that merged two
headers sends "alice, bob") or hides control or formatting characters (a line break, a
right-to-left override) cannot be read back as one person, so it is refused wherever a name
enters: the JSON of a decision, the sign-on header, the reviewers' keys.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

REVIEWER_NAME_MAX = 100
# Control, format (invisible: zero-width, bidi overrides), line and paragraph separators,
# surrogates and unassigned code points.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})

# Whom an upload (and so its withdrawal) belongs to: a reviewer's own key, the sign-on proxy's
# user, the shared API key (which names nobody), or nobody on an open server. Uploads recorded
# before owners were kept are `unrecorded`, and nobody can withdraw them.
IdentitySource = Literal["reviewer_key", "sso_header", "shared_key", "anonymous", "unrecorded"]


@dataclass(frozen=True)
class Identity:
    """`name` is empty for the shared key and for anonymous callers."""

    name: str
    source: IdentitySource

    @property
    def names_a_person(self) -> bool:
        return self.source in ("reviewer_key", "sso_header")

    def describe(self) -> str:
        """In a refusal's words: whose upload it is."""
        if self.names_a_person:
            return repr(self.name)
        return {
            "shared_key": "the shared API key",
            "anonymous": "an anonymous client",
            "unrecorded": "an upload recorded before uploads had owners",
        }[self.source]


ANONYMOUS = Identity("", "anonymous")
SHARED_KEY = Identity("", "shared_key")


def reviewer_name_problem(name: str) -> str | None:
    """Why `name` cannot be recorded as one reviewer; None when it can (once stripped)."""
    stripped = name.strip()
    if not stripped:
        return "the reviewer's name is blank"
    if len(stripped) > REVIEWER_NAME_MAX:
        return f"the reviewer's name is longer than {REVIEWER_NAME_MAX} characters"
    if "," in stripped:
        return (
            "the reviewer's name holds a comma, which joins two names (a proxy that merged two "
            "headers?): one person per decision, written without a comma"
        )
    if any(unicodedata.category(character) in REFUSED_CATEGORIES for character in stripped):
        return "the reviewer's name holds a control or invisible formatting character"
    return None


def clean_reviewer_name(name: str) -> str:
    """The name as recorded (surrounding spaces dropped); ValueError with the reason if none."""
    problem = reviewer_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name.strip()
