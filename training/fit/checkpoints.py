"""Which epoch a run keeps, and the files that keep it (after timm's CheckpointSaver).

last.pt holds the latest epoch's model; best.pt the best epoch by the monitored validation
figure, or the latest under `--checkpoint last`; without validation every epoch is kept. The
kept epoch's validation predictions go to val_predictions.csv when training ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from training.data.predictions import Predictions
from training.fit.artifacts import BEST_CHECKPOINT, RunDir
from training.fit.models import CellClassifier, create_classifier
from training.metrics.classification_metrics import BinaryMetrics, Monitor


@dataclass(frozen=True)
class Validation:
    """One epoch's predictions for the validation subjects, and their figures."""

    predictions: Predictions
    metrics: BinaryMetrics


class CheckpointKeeper:
    """Saves every epoch as last.pt and the kept one as best.pt; remembers the kept epoch's
    validation. Only the process that writes the run directory has `write`."""

    def __init__(
        self,
        run: RunDir,
        monitor: Monitor,
        policy: Literal["best", "last"] = "best",
        *,
        write: bool = True,
    ) -> None:
        self.run = run
        self.monitor = monitor
        self.policy = policy
        self.write = write
        self.best_score = -math.inf
        self.kept: Validation | None = None

    def update(
        self, model: nn.Module, phase: str, epoch: int, validation: Validation | None
    ) -> bool:
        """Save the epoch; True when it improved the monitored figure (always without
        validation, so that nothing stops early)."""
        improved = keep = True
        if validation is not None:
            score = validation.metrics.monitored(self.monitor)
            improved = not math.isnan(score) and score > self.best_score
            if improved:
                self.best_score = score
            keep = improved or self.policy == "last"
            if keep:
                self.kept = validation
        if self.write:
            checkpoint = {"model": model.state_dict(), "phase": phase, "epoch": epoch}
            torch.save(checkpoint, self.run.last_checkpoint)
            if keep:
                torch.save(checkpoint, self.run.best_checkpoint)
        return improved

    def finish(self, model: nn.Module) -> None:
        """A run that trained no epoch still gets its best.pt (the initial model); the kept
        epoch's validation predictions are written beside it."""
        if not self.write:
            return
        if not self.run.best_checkpoint.exists():
            checkpoint = {"model": model.state_dict(), "phase": "none", "epoch": 0}
            torch.save(checkpoint, self.run.best_checkpoint)
        if self.kept is not None:
            self.run.write_validation_predictions(self.kept.predictions)


def load_trained_model(run_dir: Path, checkpoint: str = BEST_CHECKPOINT) -> CellClassifier:
    """The run's kept model (or another of its checkpoints), on the CPU, in eval mode."""
    config = RunDir(run_dir).read_config().train
    model = create_classifier(config.arch, config.head, drop_path_rate=config.drop_path)
    state = torch.load(run_dir / checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval()
