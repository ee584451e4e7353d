"""Predictions as table rows: the one CSV layout of the batch API and the command line.

Samples as rows too: each one's share of blast-like cells, a research aid, never a diagnosis.
And the audit's rows, for its export (GET /api/v1/audit.csv).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TextIO

from app.core.domain.outcomes import Outcome, Refusal
from app.core.domain.samples import BlastShare
from app.records.audit_rows import AuditRecord

AUDIT_ROWS_PER_CHUNK = 500

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


def kind_and_reason(refusal: Refusal) -> str:
    return f"{refusal.kind}: {refusal.reason}"


def result_row(
    filename: str,
    outcome: Outcome,
    describe: Callable[[Refusal], str] = kind_and_reason,
) -> dict[str, str]:
    """One row; a refusal's `error` as `describe` says it (its kind and reason by default)."""
    if isinstance(outcome, Refusal):
        return {
            "filename": spreadsheet_safe(filename),
            "status": "error",
            "error": spreadsheet_safe(describe(outcome)),
        }
    return {
        "filename": spreadsheet_safe(filename),
        "status": "ok",
        "label": outcome.label or "",  # empty when not assessable
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


SAMPLE_COLUMNS = [
    "sample_id",
    "n_cells",
    "n_assessable",
    "n_reviewed",
    "blast_like_share_observed",
    "blast_like_share_corrected",
    "ci95_low",
    "ci95_high",
    "interval_readable",
    "more_cells_needed",
    "sample_score",
    "sensitivity",
    "specificity",
    "note",
]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def sample_row(sample_id: str, share: BlastShare, score: float | None) -> dict[str, str]:
    return {
        "sample_id": spreadsheet_safe(sample_id),
        "n_cells": str(share.n_cells),
        "n_assessable": str(share.n_assessable),
        "n_reviewed": str(share.n_reviewed),
        "blast_like_share_observed": _number(share.observed),
        "blast_like_share_corrected": _number(share.corrected),
        "ci95_low": _number(share.ci_low),
        "ci95_high": _number(share.ci_high),
        "interval_readable": "" if share.corrected is None else str(not share.too_wide).lower(),
        "more_cells_needed": str(share.more_cells_needed or ""),
        "sample_score": _number(score),
        "sensitivity": _number(share.sensitivity),
        "specificity": _number(share.specificity),
        "note": spreadsheet_safe(share.note),
    }


def samples_writer(stream: TextIO) -> csv.DictWriter[str]:
    writer = csv.DictWriter(stream, fieldnames=SAMPLE_COLUMNS)
    writer.writeheader()
    return writer


AUDIT_COLUMNS = [
    "time_utc",
    "request_id",
    "client_request_id",
    "item",
    "image_sha256",
    "model_id",
    "model_version",
    "probability_all",
    "label",
    "latency_ms",
    "outcome",
]


def audit_csv(records: Iterable[AuditRecord]) -> Iterator[str]:
    """The audit as CSV text, a slice of rows at a time (the header first)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=AUDIT_COLUMNS)
    writer.writeheader()
    for count, record in enumerate(records, 1):
        writer.writerow(
            {
                "time_utc": datetime.fromtimestamp(record.time, UTC)
                .isoformat()
                .replace("+00:00", "Z"),
                "request_id": record.request_id,
                "client_request_id": spreadsheet_safe(record.client_request_id),
                "item": record.item,
                "image_sha256": record.image_sha256,
                "model_id": spreadsheet_safe(record.model_id),
                "model_version": spreadsheet_safe(record.model_version),
                "probability_all": f"{record.probability_all:.6f}",
                "label": record.label,
                "latency_ms": f"{record.latency_ms:.3f}",
                "outcome": record.outcome,
            }
        )
        if count % AUDIT_ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
