"""The plain data a model card is written from: what an export read of its run and was asked
to write, and what an adaptation was made from and how it did. Export and adaptation build
these and the card writer (model_card.py) reads them, so neither caller is imported by it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.manifest import AdaptationGain, Evaluation, HeldOutRates
from app.core.recipe import PreprocessConfig
from training.fit.artifacts import CvDir, RunConfig, RunDir
from training.fit.checkpoints import load_trained_model
from training.fit.models import CellClassifier
from training.fit.train_config import TrainConfig
from training.release.decision_rule import ThresholdRule
from training.release.site_refit import FittedRule, Strength
from training.release.site_reviews import ReviewedCell


@dataclass(frozen=True)
class ExportOptions:
    """What `export_run` writes besides the run's model: the card's names, where the decision
    rule and its figures come from, and which checks it measures."""

    model_id: str | None = None
    """Default: arch-size-crop (`default_model_id`)."""
    version: str = "1"
    cv_dir: Path | None = None
    """A cross-validation of the same recipe: its out-of-fold predictions choose the
    calibration and threshold, and its figures go into the card."""
    training_command: str = ""
    selection: str | None = None
    """How this model was chosen against the others, in words for the card."""
    parity_count: int = 16
    """Real cells on which onnxruntime must match PyTorch."""
    measure_tta_gain: bool = True
    threshold_rule: ThresholdRule = "best_balanced_accuracy"
    """How the threshold is chosen on the held-out predictions (decision_rule.py)."""
    changes: str = ""
    """What is new in this version, for the card's changelog (a default names the run)."""

    @property
    def cv(self) -> CvDir | None:
        return None if self.cv_dir is None else CvDir(self.cv_dir)


@dataclass(frozen=True)
class TrainedRun:
    """A run directory with its configuration and its kept checkpoint, read once."""

    run: RunDir
    resolved: RunConfig
    model: CellClassifier

    @classmethod
    def load(cls, run_dir: Path) -> TrainedRun:
        return cls(RunDir(run_dir), RunDir(run_dir).read_config(), load_trained_model(run_dir))

    @property
    def config(self) -> TrainConfig:
        return self.resolved.train

    @property
    def recipe(self) -> PreprocessConfig:
        return self.resolved.preprocessing


@dataclass(frozen=True)
class HeldOutResult:
    protocol: str
    before: Evaluation
    after: Evaluation
    better: bool
    recommended: bool = False
    gain: AdaptationGain | None = None
    local_before: HeldOutRates | None = None
    local_after: HeldOutRates | None = None


@dataclass(frozen=True)
class AdaptedFrom:
    """What an adaptation was made from and how it did: everything its card records."""

    cells: list[ReviewedCell]
    reviews: Path | str
    strength: Strength
    final: FittedRule
    held_out: HeldOutResult
    minimum_subjects_per_class: int
