"""How the served model does on the lab's own reviewed cells, against its card: the figures a
lab's quality manager reports (sensitivity, specificity and balanced accuracy with intervals
from resampling whole samples, the confusion counts, the agreement, the drift against the
card's rates on unseen patients), overall and per week or month."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from app.core.domain.performance import LocalPerformance
from app.core.model_registry import ModelRegistry, UnknownModelError
from app.records.performance_read import performance_of
from app.records.review_records import ReviewRecords
from app.settings import Settings
from app.web.api.bodies import ErrorResponse
from app.web.api.deps import RegistryDep, ReviewRecordsDep, SettingsDep

router = APIRouter(tags=["review"])

Period = Literal["week", "month"]


def as_utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC, as every time in the records is."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def records_url(settings: Settings) -> str | None:
    """How `training adapt --from-records` reaches these records, never with a password;
    None when they are kept in memory only."""
    if settings.database_url is not None:
        return '"$LEUKOLENS_DATABASE_URL"'
    if settings.records_in_memory:
        return None
    return f"sqlite:///{settings.audit_log_path}"


def shown_path(path: Path) -> str:
    here = Path.cwd().resolve()
    path = path.resolve()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)


def adapt_command(
    settings: Settings,
    registry: ModelRegistry,
    model_id: str,
    since: datetime | None,
    until: datetime | None,
) -> str | None:
    """The command that adapts the model on exactly these reviewed cells."""
    url = records_url(settings)
    if url is None:
        return None
    model_dir = registry.get(model_id).model_dir
    site_id = f"{model_id}-local"
    words = [
        "./scripts/train adapt",
        f"--model {shown_path(model_dir)}",
        f"--from-records {url}",
        "--images FOLDER_WITH_THE_REVIEWED_IMAGES",
        "--strength head_refit",
        f"--id {site_id}",
        f"--out {shown_path(model_dir.parent / site_id)}",
    ]
    words += [f"--since {since.isoformat()}"] if since else []
    words += [f"--until {until.isoformat()}"] if until else []
    return " ".join(words)


def measure(
    records: ReviewRecords,
    registry: ModelRegistry,
    settings: Settings,
    *,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    period: Period,
) -> LocalPerformance:
    """The figures for a request (the API's and the page's): 404 for an unknown model, 422
    for a window that ends before it starts."""
    since, until = as_utc(since), as_utc(until)
    if since is not None and until is not None and since >= until:
        raise HTTPException(422, "'since' must be earlier than 'until'")
    try:
        classifier = registry.get(model)
    except UnknownModelError as error:
        raise HTTPException(404, str(error)) from error
    manifest = classifier.manifest
    return performance_of(
        records.engine,
        manifest,
        period=period,
        since=since,
        until=until,
        adapt_command=adapt_command(settings, registry, manifest.id, since, until),
    )


ModelQuery = Annotated[
    str | None, Query(description="Model id; default: the served default model.")
]
SinceQuery = Annotated[
    datetime | None,
    Query(description="Cells scored at or after this time (ISO 8601; without a zone, UTC)."),
]
UntilQuery = Annotated[
    datetime | None, Query(description="Cells scored before this time (ISO 8601).")
]
PeriodQuery = Annotated[Period, Query(description="The figures per week or per month.")]


@router.get(
    "/performance",
    response_model=LocalPerformance,
    responses={
        404: {"model": ErrorResponse, "description": "unknown model"},
        422: {"model": ErrorResponse, "description": "bad time or period"},
    },
)
def local_performance(
    records: ReviewRecordsDep,
    registry: RegistryDep,
    settings: SettingsDep,
    model: ModelQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    period: PeriodQuery = "month",
) -> LocalPerformance:
    """How the model did on the lab's reviewed cells: each cell once, by its latest decision
    (ALL or HEM) against the model's call at its served threshold; cells decided not
    assessable, not-assessable answers, withdrawn cells and repeats are left out and counted
    beside. A research aid for the lab's own quality reporting, not a clinical validation."""
    return measure(
        records, registry, settings, model=model, since=since, until=until, period=period
    )
