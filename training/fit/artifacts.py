"""Every file of a training run and of a cross-validation: named, read and written here only.

A run directory (`train`, or one fold of a `cv`) holds config.json (`RunConfig`: the resolved
configuration, the recipe with the measured mean/std, the split's subjects), command.txt,
metrics.jsonl (an `EpochRow` per epoch), train.log, last.pt, best.pt and
val_predictions.csv. A cv directory holds cv_config.json and command.txt (both written
when it starts), fold<k>/ (one run directory per fold), oof_predictions.csv,
cv_summary.json (`CvSummary`), colour_counterfactual.json and heat_in_cell.json (each a
`HeldOutReport`) and, once measured, external_evaluation.json.

Torch-free: reading a run's reports needs no training stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from app.core.recipe import PreprocessConfig
from training.data.predictions import Predictions
from training.fit.train_config import TrainConfig
from training.metrics.classification_metrics import BinaryMetrics

CONFIG = "config.json"
COMMAND = "command.txt"
METRICS = "metrics.jsonl"
LOG = "train.log"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
VAL_PREDICTIONS = "val_predictions.csv"
CV_CONFIG = "cv_config.json"
OOF_PREDICTIONS = "oof_predictions.csv"
CV_SUMMARY = "cv_summary.json"
CV_COUNTERFACTUAL = "colour_counterfactual.json"
CV_HEAT_IN_CELL = "heat_in_cell.json"
EXTERNAL_REPORT = "external_evaluation.json"
FOLD_PATTERN = "fold[0-9]*"

Report = TypeVar("Report", bound=BaseModel)


class RunConfig(BaseModel):
    """config.json: everything needed to rebuild, export or audit the run."""

    model_config = ConfigDict(extra="allow")  # an older run's extra keys reach its card

    train: TrainConfig
    preprocessing: PreprocessConfig
    split: str | None
    train_subjects: dict[str, int]
    validation_subjects: dict[str, int]
    subject_populations: dict[str, str] = {}
    """Each subject's population (`fold1`, `external-folds`, ...): which people it learned from."""
    duplicates_removed: int = 0
    torch: str | None = None

    def as_card_json(self) -> dict[str, object]:
        """The file's content, as the model card's provenance keeps it."""
        return dict(self.model_dump(mode="json", exclude_unset=True))


class EpochRow(BaseModel):
    """One line of metrics.jsonl."""

    phase: str
    epoch: int
    train_loss: float
    lr: float
    seconds: float
    images_per_second: float
    train_heat_off_cell: float | None = None
    validation: BinaryMetrics | None = None

    def to_line(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True))


class MeanStd(BaseModel):
    mean: float
    std: float


class FoldSummary(BaseModel):
    fold: int
    validation_subjects: list[str]
    metrics: BinaryMetrics


Figures = dict[str, float | int | None]


class HeldOutReport(BaseModel):
    """One measurement of every fold's model on its own held-out subjects: per fold (with the
    fold's number), mean ± std over the folds, and pooled over all held-out cells."""

    protocol: str
    per_fold: list[Figures]
    mean_std: dict[str, MeanStd]
    pooled: Figures


class CvSummary(BaseModel):
    """cv_summary.json."""

    protocol: str
    config: TrainConfig
    images_indexed: int
    per_fold: list[FoldSummary]
    mean_std: dict[str, MeanStd]
    pooled: BinaryMetrics
    per_subject_accuracy: dict[str, float]
    colour_counterfactual: HeldOutReport | None = None
    heat_in_cell: HeldOutReport | None = None


def _write(path: Path, report: BaseModel) -> None:
    # json.dumps, not pydantic's JSON: NaN (a fold with one class) stays NaN, as it always was.
    text = json.dumps(report.model_dump(mode="json"), indent=2)
    path.write_text(text + "\n", encoding="utf-8")


def _read(path: Path, kind: type[Report]) -> Report:
    return kind.model_validate(json.loads(path.read_text(encoding="utf-8")))


def _read_optional(path: Path, kind: type[Report]) -> Report | None:
    return _read(path, kind) if path.is_file() else None


def _write_command(path: Path, command: str) -> None:
    path.write_text(command + "\n", encoding="utf-8")


def _read_command(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


@dataclass(frozen=True)
class RunDir:
    """The directory of one training run."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def command_file(self) -> Path:
        return self.path / COMMAND

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def log_file(self) -> Path:
        return self.path / LOG

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    @property
    def val_predictions(self) -> Path:
        return self.path / VAL_PREDICTIONS

    def write_config(self, config: RunConfig) -> None:
        _write(self.config_file, config)

    def read_config(self) -> RunConfig:
        return _read(self.config_file, RunConfig)

    def write_command(self, command: str) -> None:
        _write_command(self.command_file, command)

    def read_command(self) -> str:
        """The command that started the run; empty when it was not written (a cv's folds)."""
        return _read_command(self.command_file)

    def start_metrics(self) -> None:
        self.metrics_file.write_text("", encoding="utf-8")

    def append_metrics(self, row: EpochRow) -> None:
        with self.metrics_file.open("a", encoding="utf-8") as stream:
            stream.write(row.to_line() + "\n")

    def read_metrics(self) -> list[EpochRow]:
        lines = self.metrics_file.read_text(encoding="utf-8").splitlines()
        return [EpochRow.model_validate(json.loads(line)) for line in lines if line.strip()]

    def has_validation_predictions(self) -> bool:
        return self.val_predictions.is_file()

    def write_validation_predictions(self, predictions: Predictions) -> None:
        predictions.write_csv(self.val_predictions)

    def read_validation_predictions(self) -> Predictions:
        return Predictions.read_csv(self.val_predictions)


@dataclass(frozen=True)
class CvDir:
    """The directory of one cross-validation: a run directory per fold and the pooled reports."""

    path: Path

    def fold(self, index: int) -> RunDir:
        return RunDir(self.path / f"fold{index}")

    def folds(self) -> list[RunDir]:
        """The folds' run directories (fold0, fold1, ...), in name order."""
        return [RunDir(path) for path in sorted(self.path.glob(FOLD_PATTERN))]

    @property
    def config_file(self) -> Path:
        return self.path / CV_CONFIG

    @property
    def command_file(self) -> Path:
        return self.path / COMMAND

    @property
    def summary_file(self) -> Path:
        return self.path / CV_SUMMARY

    @property
    def oof_predictions(self) -> Path:
        return self.path / OOF_PREDICTIONS

    @property
    def counterfactual_file(self) -> Path:
        return self.path / CV_COUNTERFACTUAL

    @property
    def heat_file(self) -> Path:
        return self.path / CV_HEAT_IN_CELL

    def write_config(self, config: TrainConfig) -> None:
        _write(self.config_file, config)

    def write_command(self, command: str) -> None:
        _write_command(self.command_file, command)

    def read_command(self) -> str:
        return _read_command(self.command_file)

    def write_summary(self, summary: CvSummary) -> None:
        _write(self.summary_file, summary)

    def read_summary(self) -> CvSummary:
        return _read(self.summary_file, CvSummary)

    def write_out_of_fold(self, predictions: Predictions) -> None:
        predictions.write_csv(self.oof_predictions)

    def read_out_of_fold(self) -> Predictions:
        return Predictions.read_csv(self.oof_predictions)

    def write_counterfactual(self, report: HeldOutReport) -> None:
        _write(self.counterfactual_file, report)

    def read_counterfactual(self) -> HeldOutReport | None:
        """None for a cross-validation run before the measurement existed."""
        return _read_optional(self.counterfactual_file, HeldOutReport)

    def write_heat(self, report: HeldOutReport) -> None:
        _write(self.heat_file, report)

    def read_heat(self) -> HeldOutReport | None:
        return _read_optional(self.heat_file, HeldOutReport)


def read_train_config(path: Path) -> TrainConfig:
    """The training configuration saved in a run's config.json or a cv's cv_config.json."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(payload, dict) and "train" in payload:
        return RunConfig.model_validate(payload).train
    return TrainConfig.model_validate(payload)
