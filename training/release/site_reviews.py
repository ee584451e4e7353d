"""A lab's reviewed cells, the labelled examples a site model is adapted on: read from a CSV
or from the review workstation's records, and checked for enough people of each class."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.records.decisions_read import latest_decisions_in
from app.records.performance_read import Selection, counted_cells, open_existing
from training.data.dataset_index import LABEL_ALL, LABEL_HEM, LABEL_NAMES


class AdaptationError(ValueError):
    """The reviews cannot make a site model; the message says why."""


@dataclass(frozen=True)
class ReviewedCell:
    path: Path
    subject: str
    label: int


DECISIONS = {"ALL": LABEL_ALL, "HEM": LABEL_HEM, "1": LABEL_ALL, "0": LABEL_HEM}


NOT_ASSESSABLE = "not_assessable"


def read_review_csv(csv_path: Path, images: Path) -> list[ReviewedCell]:
    """Columns image (relative to `images`), label (ALL/HEM, 1/0 or not_assessable), subject."""
    cells = []
    with csv_path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or not {"image", "label", "subject"} <= set(reader.fieldnames):
            raise AdaptationError(f"{csv_path}: needs the columns image, label, subject")
        for row in reader:
            label = row["label"].strip()
            if label.lower() == NOT_ASSESSABLE:
                continue
            if label.upper() not in DECISIONS:
                raise AdaptationError(f"{csv_path}: label {label!r} is not ALL, HEM or 1/0")
            path = images / row["image"].strip()
            if not path.is_file():
                raise AdaptationError(f"{csv_path}: {path} does not exist")
            cells.append(ReviewedCell(path, row["subject"].strip(), DECISIONS[label.upper()]))
    return cells


def read_review_database(database: Path | str, images: Path) -> list[ReviewedCell]:
    """The review workstation's decisions (the last one per image of a sample wins), read from
    the records' database (a SQLite file, or the deployment's PostgreSQL URL) through the
    module that writes them, matched to the files under `images` by the sha256 of their bytes:
    the records never hold images."""
    by_hash: dict[str, Path] = {}
    for path in sorted(p for p in images.rglob("*") if p.is_file()):
        by_hash.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    cells, unmatched = [], 0
    try:
        for decision in latest_decisions_in(database):  # one per cell, streamed
            if decision.decision == NOT_ASSESSABLE:
                continue
            if decision.image_sha256 not in by_hash:
                unmatched += 1
                continue
            cells.append(
                ReviewedCell(
                    by_hash[decision.image_sha256],
                    decision.sample_id,
                    DECISIONS[decision.decision],
                )
            )
    except (LookupError, SQLAlchemyError) as error:
        raise AdaptationError(f"{database}: no review records ({error})") from error
    if unmatched:
        print(f"{unmatched} reviewed images are not under {images}; left out")
    return cells


def read_records(
    database: Path | str,
    images: Path,
    model_id: str,
    model_version: str,
    *,
    since: float | None = None,
    until: float | None = None,
) -> list[ReviewedCell]:
    """The cells the lab's performance figures count for this model version (each cell once,
    by its latest ALL or HEM decision; withdrawn cells, repeats and not-assessable ones left
    out), read by the same SQL, matched to the files under `images` by sha256."""
    by_hash: dict[str, Path] = {}
    for path in sorted(p for p in images.rglob("*") if p.is_file()):
        by_hash.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    try:
        engine = open_existing(database)
    except (LookupError, SQLAlchemyError) as error:
        raise AdaptationError(f"{database}: no review records ({error})") from error
    try:
        with engine.connect() as connection:
            selection = Selection(model_id, model_version, since, until)
            counted = counted_cells(connection, selection)
    finally:
        engine.dispose()
    cells = [
        ReviewedCell(by_hash[c.image_sha256], c.sample_id, DECISIONS[c.decision])
        for c in counted
        if c.image_sha256 in by_hash
    ]
    if len(cells) < len(counted):
        print(f"{len(counted) - len(cells)} reviewed images are not under {images}; left out")
    return cells


def reviews_source_name(reviews: Path | str) -> str:
    """For the card: a file's name, or a database URL without its password or host."""
    if "://" in str(reviews):
        url = sa.make_url(str(reviews))
        return f"{url.get_backend_name()} database {url.database or ''}".strip()
    return Path(reviews).name


def read_reviews(reviews: Path | str, images: Path) -> list[ReviewedCell]:
    """A CSV, a records file, or the deployment's database URL (PostgreSQL)."""
    if "://" in str(reviews):
        return read_review_database(str(reviews), images)
    reviews = Path(reviews)
    if not reviews.is_file():
        raise AdaptationError(f"{reviews}: not found")
    if reviews.suffix.lower() == ".csv":
        return read_review_csv(reviews, images)
    return read_review_database(reviews, images)


def check_enough_subjects(cells: Sequence[ReviewedCell], minimum: int) -> None:
    subjects = {label: {c.subject for c in cells if c.label == label} for label in LABEL_NAMES}
    short = [
        f"{len(subjects[label])} {LABEL_NAMES[label]}"
        for label in (LABEL_ALL, LABEL_HEM)
        if len(subjects[label]) < minimum
    ]
    if short:
        raise AdaptationError(
            f"adaptation needs at least {minimum} subjects (samples) of each class, to hold "
            f"each one out and still fit on two of its class; the reviews have "
            f"{' and '.join(short)} subject(s). Review cells of more people first."
        )
    # A lab's sample (a person) may hold cells of both classes: it counts for each.
