"""Warnings about the input itself: a prediction is only meaningful for a segmented cell."""

from __future__ import annotations

from app.preprocessing import PreprocessedViews
from app.schemas import QualityWarning

MIN_FOREGROUND_FRACTION = 0.002
MAX_FOREGROUND_FRACTION = 0.9


def quality_warnings(views: PreprocessedViews) -> list[QualityWarning]:
    warnings: list[QualityWarning] = []
    if views.foreground_fraction < MIN_FOREGROUND_FRACTION:
        warnings.append(
            QualityWarning(
                code="no_cell",
                message="Almost no pixel is brighter than the black background: no cell found.",
            )
        )
    elif views.foreground_fraction > MAX_FOREGROUND_FRACTION:
        warnings.append(
            QualityWarning(
                code="no_background",
                message=(
                    "The image has no black surround: the model expects one segmented cell on "
                    "black, as in C-NMC. The result is unreliable."
                ),
            )
        )
    return warnings
