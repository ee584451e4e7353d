"""One epoch of a phase and what is read off it: the batch loss (with the heat penalty and
distillation), the phases and their optimiser and schedule, validation, early stopping and the
epoch's row in metrics.csv."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from app.core.classifier import sigmoid
from app.core.recipe import PreprocessConfig
from training.data.cell_dataset import CellBatch, CellDataset
from training.data.predictions import Predictions
from training.fit import distributed
from training.fit.artifacts import EpochRow
from training.fit.checkpoints import Validation
from training.fit.distillation import distillation_loss
from training.fit.explanation_penalty import (
    logits_and_heat_off_cell,
    use_running_batch_norm_statistics,
)
from training.fit.models import CellClassifier, set_backbone_trainable
from training.fit.train_config import TrainConfig
from training.metrics.classification_metrics import binary_metrics


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device: torch.device) -> torch.autocast:
    """bfloat16 mixed precision on CUDA (no loss scaling needed); full precision on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def predict(model: CellClassifier, dataset: CellDataset, batch_size: int) -> Predictions:
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    logits = []
    for images, _ in loader:
        with autocast(device):
            logits.append(model(images.to(device)).float().cpu())
    stacked = torch.cat(logits).numpy() if logits else np.zeros(0, dtype=np.float32)
    return Predictions(
        images=tuple(dataset.images),
        logits=stacked,
        probabilities=sigmoid(stacked),
    )


@dataclass(frozen=True)
class TrainingLoss:
    """A batch's loss: the class-weighted cross-entropy, plus the share of Grad-CAM heat off
    the cell and the teachers' probabilities when the config asks for them."""

    criterion: nn.Module
    recipe: PreprocessConfig
    off_cell_heat_penalty: float = 0.0
    teachers: Sequence[CellClassifier] = ()
    distillation_weight: float = 0.0

    @property
    def penalises_heat_off_cell(self) -> bool:
        return self.off_cell_heat_penalty > 0

    def __call__(
        self,
        model: CellClassifier,
        trained: nn.Module,
        batch: torch.Tensor,
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(loss, share of heat off the cell); `trained` is the module the forward goes
        through (DDP's wrapper), bypassed by the penalty, which needs the bare model."""
        off_cell_share = None
        if self.penalises_heat_off_cell:
            logits, off_cell = logits_and_heat_off_cell(model, batch, self.recipe)
            off_cell_share = off_cell.mean()
            loss = self.criterion(logits, targets)
            loss = loss + self.off_cell_heat_penalty * off_cell_share
        else:
            logits = trained(batch)
            loss = self.criterion(logits, targets)
        if self.teachers:
            loss = distillation_loss(logits, loss, self.teachers, batch, self.distillation_weight)
        return loss, off_cell_share


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    lr: float
    backbone_trainable: bool


def phases(config: TrainConfig) -> list[Phase]:
    return [
        Phase("head", config.resolved_head_epochs, config.head_lr, backbone_trainable=False),
        Phase("full", config.epochs, config.lr, backbone_trainable=True),
    ]


@dataclass(frozen=True)
class Stepper:
    """What a phase steps: the model, the module its forward goes through (DDP's wrapper
    under torchrun), the optimiser and its schedule."""

    model: CellClassifier
    trained: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR

    @classmethod
    def for_phase(
        cls,
        model: CellClassifier,
        phase: Phase,
        config: TrainConfig,
        group: distributed.ProcessGroup,
        steps_per_epoch: int,
    ) -> Stepper:
        set_backbone_trainable(model, phase.backbone_trainable)
        trained = distributed.wrap(model, group)  # per phase: DDP tracks the trainable set
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(parameters, lr=phase.lr, weight_decay=config.weight_decay)
        warmup = round(config.warmup_epochs * steps_per_epoch) if phase.backbone_trainable else 0
        scheduler = warmup_cosine(optimizer, warmup, phase.epochs * steps_per_epoch)
        return cls(model, trained, optimizer, scheduler)


@dataclass(frozen=True)
class EpochLosses:
    losses: list[float]
    off_cell_shares: list[float]


def train_one_epoch(
    stepper: Stepper,
    loader: DataLoader[CellBatch],
    loss_of: TrainingLoss,
    phase: Phase,
    group: distributed.ProcessGroup,
    description: str,
) -> EpochLosses:
    model, device = stepper.model, next(stepper.model.parameters()).device
    model.train()
    if not phase.backbone_trainable:
        model.backbone.eval()  # frozen means frozen batch-norm statistics too
    elif loss_of.penalises_heat_off_cell:
        use_running_batch_norm_statistics(model)
    losses: list[float] = []
    off_cell_shares: list[float] = []
    progress = tqdm(loader, desc=description, leave=False)
    for batch, targets in progress:
        batch = batch.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        stepper.optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss, off_cell_share = loss_of(model, stepper.trained, batch, targets)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        if loss_of.penalises_heat_off_cell:
            distributed.average_gradients(model, group)  # not through DDP's forward
        stepper.optimizer.step()
        stepper.scheduler.step()
        losses.append(loss.item())
        if off_cell_share is not None:
            off_cell_shares.append(off_cell_share.item())
        progress.set_postfix(loss=f"{np.mean(losses):.4f}")
    return EpochLosses(losses, off_cell_shares)


def evaluate_epoch(model: CellClassifier, dataset: CellDataset, batch_size: int) -> Validation:
    predictions = predict(model, dataset, batch_size)
    return Validation(
        predictions, binary_metrics(predictions.labels, predictions.probabilities, 0.5)
    )


@dataclass
class EarlyStopping:
    """Stops the end-to-end phase after `patience` epochs without a gain in the monitored
    figure; the count runs on from the head phase."""

    patience: int | None
    epochs_without_gain: int = 0

    def update(self, improved: bool) -> None:
        self.epochs_without_gain = 0 if improved else self.epochs_without_gain + 1

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.epochs_without_gain >= self.patience


def epoch_row(
    phase: Phase,
    epoch: int,
    trained: EpochLosses,
    stepper: Stepper,
    seconds: float,
    batch_size: int,
    group: distributed.ProcessGroup,
) -> EpochRow:
    losses, shares = trained.losses, trained.off_cell_shares
    return EpochRow(
        phase=phase.name,
        epoch=epoch,
        train_loss=distributed.mean_over_processes(
            float(np.mean(losses)) if losses else float("nan"), group
        ),
        lr=stepper.optimizer.param_groups[0]["lr"],
        seconds=round(seconds, 2),
        images_per_second=round(len(losses) * batch_size / seconds, 2),
        train_heat_off_cell=round(float(np.mean(shares)), 4) if shares else None,
    )


def epoch_summary(row: EpochRow) -> str:
    text = (
        f"{row.phase} epoch {row.epoch}: loss {row.train_loss:.4f}, "
        f"{row.seconds:.0f} s, {row.images_per_second:.1f} images/s"
    )
    if row.validation is not None:
        text += (
            f" | validation AUC {row.validation.roc_auc:.4f}, "
            f"balanced accuracy {row.validation.balanced_accuracy:.4f}"
        )
    return text
