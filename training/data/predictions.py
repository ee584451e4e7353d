"""A model's predictions for indexed cells, as written to val_predictions.csv and
oof_predictions.csv. Torch-free, so that reading them back needs no training stack."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self, cast

import numpy as np

from training.data.dataset_index import CellImage

COLUMNS = ("path", "subject", "label", "population", "logit", "probability_all")


@dataclass(frozen=True)
class Predictions:
    images: tuple[CellImage, ...]
    logits: np.ndarray
    probabilities: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([image.label for image in self.images])

    @property
    def subjects(self) -> list[str]:
        return [image.subject for image in self.images]

    @classmethod
    def concatenate(cls, parts: Sequence[Predictions]) -> Predictions:
        """The folds' held-out predictions pooled, in fold order."""
        return cls(
            images=tuple(image for part in parts for image in part.images),
            logits=np.concatenate([part.logits for part in parts]),
            probabilities=np.concatenate([part.probabilities for part in parts]),
        )

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(COLUMNS)
            for image, logit, probability in zip(
                self.images, self.logits, self.probabilities, strict=True
            ):
                writer.writerow(
                    [
                        image.path,
                        image.subject,
                        image.label,
                        image.population,
                        f"{logit:.6f}",
                        f"{probability:.6f}",
                    ]
                )

    @classmethod
    def read_csv(cls, path: Path) -> Predictions:
        """Back from a file written by `write_csv` (six decimals); files written before the
        population column read with an empty population."""
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        return cls(
            images=tuple(
                CellImage(
                    path=Path(row["path"]),
                    subject=row["subject"],
                    label=int(row["label"]),
                    population=row.get("population", ""),
                )
                for row in rows
            ),
            logits=np.asarray([float(row["logit"]) for row in rows]),
            probabilities=np.asarray([float(row["probability_all"]) for row in rows]),
        )


class PerImageArrays:
    """A base for a frozen dataclass of per-image arrays: `combine` pools several of them (a
    cv's folds), each field the concatenation of that field across the parts, in their order."""

    @classmethod
    def combine(cls, parts: Sequence[Self]) -> Self:
        arrays = {
            field.name: np.concatenate([getattr(part, field.name) for part in parts])
            for field in fields(cast(Any, cls))
        }
        return cls(**arrays)
