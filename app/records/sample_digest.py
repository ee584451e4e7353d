"""What a sign-off binds to: the sample's canonical content and each signed row, as SHA-256.

An electronic signature must be bound to the record it signs (21 CFR Part 11, 11.70): a later
change of that record has to show. At sign-off the sample's canonical content (its cells by image
sha256 with the model's call, each cell's latest decision with reviewer and time, the withdrawals,
the models' ids and versions) is serialised as canonical JSON (sorted keys, no spaces, UTF-8) and
hashed; each row the content came from is hashed too, over a fixed list of its columns (a column
a later migration adds never breaks an old signature). A check recomputes both from the rows as
they are now, read by their ids wherever they went, and names every row that changed, vanished or
appeared among the signed ones: also a row rewritten straight in the database file, behind the
API and its triggers. The content digest alone cannot say which row changed; the rows' digests
can, and a changed row that no longer counts (a superseded decision) still shows.

The signed form is versioned, and every sign-off's manifest says which it used, so that a
signature stays verifiable after the schema grows. Form 2 adds whose each upload is (its
uploader) and who withdrew it: a signer vouches for what the record says about who did what.
A decision's Idempotency-Key and its fingerprint are transport, not content: never signed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from app.records import records_db

Row = Mapping[str, Any]
CURRENT_FORM = 2
FORMATS = {1: "leukolens-sample-content/1", 2: "leukolens-sample-content/2"}
# The columns of each table a form-1 signature covers, in no particular order (sorted JSON).
FORM_1_COLUMNS: dict[str, tuple[str, ...]] = {
    "sample_predictions": (
        "id",
        "time",
        "sample_id",
        "request_id",
        "image_sha256",
        "model_id",
        "model_version",
        "probability_all",
        "label",
        "state",
        "assessable",
        "client_request_id",
        "repeat_of",
        "threshold",
        "tta",
        "warnings",
    ),
    "review_decisions": (
        "id",
        "time",
        "sample_id",
        "request_id",
        "image_sha256",
        "decision",
        "reviewer",
        "reviewer_source",
        "comment",
        "amendment",
    ),
    "sample_withdrawals": ("id", "time", "sample_id", "client_request_id"),
}
OWNER_COLUMNS = ("uploader", "uploader_source")
SIGNED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    1: FORM_1_COLUMNS,
    2: {
        "sample_predictions": (*FORM_1_COLUMNS["sample_predictions"], *OWNER_COLUMNS),
        "review_decisions": FORM_1_COLUMNS["review_decisions"],
        "sample_withdrawals": (
            *FORM_1_COLUMNS["sample_withdrawals"],
            *OWNER_COLUMNS,
            "through_id",
        ),
    },
}
TABLES = {
    "sample_predictions": records_db.sample_predictions,
    "review_decisions": records_db.review_decisions,
    "sample_withdrawals": records_db.sample_withdrawals,
}


class RowChange(BaseModel):
    table: str
    row_id: int
    change: Literal["changed", "deleted", "inserted"] = Field(
        description="changed: its columns differ from what was signed; deleted: it is gone; "
        "inserted: it belongs to the sample but was not there when signed, and no API call "
        "could have added it (a row dated into the past, or after sign-off a decision without "
        "an amendment, a cell or a withdrawal)."
    )
    image_sha256: str | None = None
    detail: str


class SignOffCheck(BaseModel):
    sign_off_id: int
    signed_by: str
    time: datetime
    content_format: str = Field(description="The signed form the digests were computed in.")
    signed_content_sha256: str
    recomputed_content_sha256: str
    matches: bool
    changed_rows: list[RowChange]


class Verification(BaseModel):
    sample_id: str
    verdict: Literal["matches", "changed", "not_signed"] = Field(
        description="matches: every sign-off's rows and content are as signed; changed: at "
        "least one differs (see sign_offs[].changed_rows); not_signed: nothing to verify."
    )
    checked_at: datetime
    sign_offs: list[SignOffCheck]


@dataclass
class SampleRows:
    """A sample's rows, per table, each as a plain mapping of its columns."""

    tables: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in TABLES}
    )

    def of(self, table: str) -> list[dict[str, Any]]:
        return self.tables[table]


def canonical_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def row_digest(table: str, row: Row, form: int = CURRENT_FORM) -> str:
    columns = SIGNED_COLUMNS[form][table]
    return sha256_hex(canonical_json({column: row[column] for column in columns}))


def _mapping(row: sa.Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def sample_rows(connection: Connection, sample_id: str) -> SampleRows:
    rows = SampleRows()
    for name, table in TABLES.items():
        found = connection.execute(
            sa.select(table).where(table.c.sample_id == sample_id).order_by(table.c.id)
        )
        rows.tables[name] = [_mapping(row) for row in found]
    return rows


def rows_by_id(connection: Connection, ids: Mapping[str, Iterable[int]]) -> SampleRows:
    """The rows with these ids, whatever sample they now claim to belong to."""
    rows = SampleRows()
    for name, table in TABLES.items():
        wanted = sorted(ids.get(name, ()))
        if wanted:
            found = connection.execute(
                sa.select(table).where(table.c.id.in_(wanted)).order_by(table.c.id)
            )
            rows.tables[name] = [_mapping(row) for row in found]
    return rows


def table_max_ids(connection: Connection) -> dict[str, int]:
    return {
        name: int(connection.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0)
        for name, table in TABLES.items()
    }


def utc(seconds: float) -> datetime:
    """A record's time (seconds since the epoch, as stored) as the API answers it."""
    return datetime.fromtimestamp(seconds, UTC)


def iso(seconds: float) -> str:
    return utc(seconds).isoformat()


def _withdrawn(row: Row, withdrawals: Iterable[Row]) -> bool:
    """As app/records/withdrawals.py: the owner's rows of that upload, up to `through_id`."""
    return bool(row["client_request_id"]) and any(
        w["client_request_id"] == row["client_request_id"]
        and (w["uploader"], w["uploader_source"]) == (row["uploader"], row["uploader_source"])
        and (w["through_id"] is None or row["id"] <= w["through_id"])
        for w in withdrawals
    )


def live_cells(rows: SampleRows) -> dict[str, dict[str, Any]]:
    """sha256 -> the first scoring of each image, withdrawn uploads left out (as the API)."""
    withdrawals = rows.of("sample_withdrawals")
    cells: dict[str, dict[str, Any]] = {}
    for row in rows.of("sample_predictions"):
        if not _withdrawn(row, withdrawals):
            cells.setdefault(row["image_sha256"], row)
    return cells


def _owner(row: Row) -> dict[str, str]:
    return {"uploader": row["uploader"], "uploader_source": row["uploader_source"]}


def canonical_content(sample_id: str, rows: SampleRows, form: int = CURRENT_FORM) -> dict[str, Any]:
    owned = form >= 2
    cells = live_cells(rows)
    latest: dict[str, dict[str, Any]] = {}
    for decision in rows.of("review_decisions"):
        if decision["image_sha256"] in cells:
            latest[decision["image_sha256"]] = decision
    content_cells = []
    for sha, cell in sorted(cells.items()):
        latest_decision = latest.get(sha)
        content_cells.append(
            {
                "image_sha256": sha,
                "request_id": cell["request_id"],
                "model_id": cell["model_id"],
                "model_version": cell["model_version"],
                "probability_all": cell["probability_all"],
                "label": cell["label"],
                "state": cell["state"],
                "assessable": bool(cell["assessable"]),
                "threshold": cell["threshold"],
                **(_owner(cell) if owned else {}),
                "decision": None
                if latest_decision is None
                else {
                    "id": latest_decision["id"],
                    "decision": latest_decision["decision"],
                    "reviewer": latest_decision["reviewer"],
                    "reviewer_source": latest_decision["reviewer_source"],
                    "time": iso(latest_decision["time"]),
                    "comment": latest_decision["comment"],
                    "amendment": latest_decision["amendment"],
                },
            }
        )
    return {
        "format": FORMATS[form],
        "sample_id": sample_id,
        "cells": content_cells,
        "withdrawals": sorted(
            (
                {
                    "client_request_id": w["client_request_id"],
                    "time": iso(w["time"]),
                    **(_owner(w) if owned else {}),
                }
                for w in rows.of("sample_withdrawals")
            ),
            key=lambda w: (w["time"], w["client_request_id"]),
        ),
        "models": sorted(
            ({"id": c["model_id"], "version": c["model_version"]} for c in cells.values()),
            key=lambda m: (m["id"], m["version"]),
        ),
    }


def content_sha256(sample_id: str, rows: SampleRows, form: int = CURRENT_FORM) -> str:
    return sha256_hex(canonical_json(canonical_content(sample_id, rows, form)))


def row_manifest(rows: SampleRows, max_ids: Mapping[str, int], form: int = CURRENT_FORM) -> str:
    """What a sign-off keeps of its rows: the signed form, each row's digest by table and id,
    and the tables' highest ids then (a row of the sample below them, not signed, was slipped
    in)."""
    digests = {
        name: {str(row["id"]): row_digest(name, row, form) for row in rows.of(name)}
        for name in TABLES
    }
    manifest: dict[str, object] = {"rows": digests, "max_ids": dict(max_ids)}
    if form != 1:  # form 1's manifests said no form
        manifest["form"] = form
    return json.dumps(manifest, sort_keys=True)


def manifest_form(manifest_json: str) -> int:
    """The signed form a manifest's digests were computed in (none said: form 1)."""
    return int(json.loads(manifest_json).get("form", 1))


def _change(table: str, row: Row, change: str, detail: str) -> RowChange:
    sha = row.get("image_sha256")
    return RowChange(
        table=table,
        row_id=int(row["id"]),
        change=change,
        image_sha256=sha if isinstance(sha, str) else None,
        detail=detail,
    )


def changed_rows(
    manifest_json: str, signed_now: SampleRows, sample_now: SampleRows, *, latest: bool
) -> list[RowChange]:
    """Rows that differ from a sign-off's manifest. `signed_now`: the signed rows read by id;
    `sample_now`: the sample's rows now; `latest`: the sample's latest sign-off, after which
    only decisions carrying an amendment may have been added."""
    manifest = json.loads(manifest_json)
    form = manifest_form(manifest_json)
    signed: dict[str, dict[str, str]] = manifest["rows"]
    max_ids: dict[str, int] = manifest["max_ids"]
    changes: list[RowChange] = []
    for name in TABLES:
        now = {str(row["id"]): row for row in signed_now.of(name)}
        for row_id, digest in signed.get(name, {}).items():
            row = now.get(row_id)
            if row is None:
                changes.append(
                    RowChange(
                        table=name,
                        row_id=int(row_id),
                        change="deleted",
                        detail=f"{name} row {row_id} was signed and is gone",
                    )
                )
            elif row_digest(name, row, form) != digest:
                changes.append(
                    _change(
                        name, row, "changed", f"{name} row {row_id} differs from what was signed"
                    )
                )
        for row in sample_now.of(name):
            if str(row["id"]) in signed.get(name, {}):
                continue
            if row["id"] <= max_ids.get(name, 0):
                detail = f"{name} row {row['id']} was not there when signed, yet is older"
                changes.append(_change(name, row, "inserted", detail))
            elif latest and not (name == "review_decisions" and row.get("amendment")):
                detail = f"{name} row {row['id']} came after sign-off without an amendment"
                changes.append(_change(name, row, "inserted", detail))
    return changes
