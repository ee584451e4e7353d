"""What a prediction may be read as: a suggestion, indeterminate, or not assessable at all.

A probability is only worth showing as a suggestion when the image is one segmented cell on
black (what the model was trained on) and the probability is not inside the uncertainty band.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from app.core.quality_checks import QualityWarning, WarningCode

AnswerState = Literal["suggests_all", "suggests_normal", "indeterminate", "not_assessable"]

# Warnings that mean the image is not what the model answers for: no cell at all, an
# unsegmented field, or several objects. The probability then describes nothing useful.
NOT_ASSESSABLE_CODES: frozenset[WarningCode] = frozenset(
    {WarningCode.NO_CELL, WarningCode.NO_BACKGROUND, WarningCode.MULTIPLE_OBJECTS}
)
INDETERMINATE_CODE = WarningCode.UNCERTAIN


def is_assessable(warnings: Iterable[QualityWarning]) -> bool:
    return not any(warning.code in NOT_ASSESSABLE_CODES for warning in warnings)


def answer_state(label: str, warnings: list[QualityWarning]) -> AnswerState:
    if not is_assessable(warnings):
        return "not_assessable"
    if any(warning.code == INDETERMINATE_CODE for warning in warnings):
        return "indeterminate"
    return "suggests_all" if label == "ALL" else "suggests_normal"
