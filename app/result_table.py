"""Predictions as table rows: the one CSV layout of the batch API and the command line."""

from __future__ import annotations

import csv
from typing import TextIO

from app.schemas import Prediction
from app.upload_checks import UploadRejectedError

RESULT_COLUMNS = [
    "filename",
    "status",
    "label",
    "probability_all",
    "threshold",
    "model_id",
    "model_version",
    "warnings",
    "error",
    "assessable",
    "state",
    "image_sha256",
    "request_id",
    "sample_id",
]
_FORMULA_STARTS = {"=", "+", "-", "@", "\t", "\r"}


def spreadsheet_safe(text: str) -> str:
    """Prefix text a spreadsheet would run as a formula (CSV injection)."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def result_row(filename: str, outcome: Prediction | UploadRejectedError) -> dict[str, str]:
    if isinstance(outcome, UploadRejectedError):
        return {
            "filename": spreadsheet_safe(filename),
            "status": "error",
            "error": spreadsheet_safe(f"{outcome.status_code}: {outcome.detail}"),
        }
    return {
        "filename": spreadsheet_safe(filename),
        "status": "ok",
        "label": outcome.label,
        "probability_all": f"{outcome.probability_all:.6f}",
        "threshold": f"{outcome.threshold:.6f}",
        "model_id": outcome.model.id,
        "model_version": outcome.model.version,
        "warnings": ";".join(w.code for w in outcome.warnings),
        "assessable": str(outcome.assessable).lower(),
        "state": outcome.state,
        "image_sha256": outcome.image_sha256 or "",
        "request_id": spreadsheet_safe(outcome.request_id),
        "sample_id": spreadsheet_safe(outcome.sample_id or ""),
    }


def results_writer(stream: TextIO) -> csv.DictWriter[str]:
    writer = csv.DictWriter(stream, fieldnames=RESULT_COLUMNS)
    writer.writeheader()
    return writer
