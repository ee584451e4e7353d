"""Train one classifier: phase 1 on a frozen backbone (head only), phase 2 end to end.

The loop over phases and epochs; the split's data is training/fit/training_data.py's, one
epoch's steps training/fit/epochs.py's. A run directory holds everything needed to export or
audit it (training/fit/artifacts.py); which epoch it keeps is training/fit/checkpoints.py's
business.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from training.data.cell_dataset import CellBatch, PreparedCache
from training.data.dataset_index import DatasetIndex, index_training_data
from training.data.predictions import Predictions
from training.fit import distributed
from training.fit.artifacts import RunDir
from training.fit.checkpoints import CheckpointKeeper
from training.fit.distillation import load_teachers
from training.fit.epochs import (
    EarlyStopping,
    Stepper,
    TrainingLoss,
    epoch_row,
    epoch_summary,
    evaluate_epoch,
    phases,
    train_one_epoch,
)
from training.fit.models import CellClassifier, create_classifier
from training.fit.train_config import TrainConfig
from training.fit.training_data import TrainingData, build_data, sampler_and_criterion, train_loader
from training.metrics.classification_metrics import BinaryMetrics

log = logging.getLogger("training")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    validation: Predictions | None
    best_metrics: BinaryMetrics | None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def build_model(config: TrainConfig, device: torch.device) -> CellClassifier:
    model = create_classifier(
        config.arch,
        config.head,
        pretrained=config.pretrained,
        init_weights=config.init_weights,
        drop_path_rate=config.drop_path,
    )
    return model.to(device)


def _setup_logging(run: RunDir) -> logging.Handler:
    handler = logging.FileHandler(run.log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def train(
    config: TrainConfig,
    index: DatasetIndex | None = None,
    prepared_cache: PreparedCache | None = None,
    *,
    command: str | None = None,
) -> TrainResult:
    """`prepared_cache` lets runs of one recipe (the folds of a cross-validation) prepare
    each image once; `command`, the command line, is saved in the run when it starts."""
    run = RunDir(config.out)
    group = distributed.join_from_environment()
    if not group.is_main:  # one process writes the run directory
        return _train(config, run, index, prepared_cache, group)
    run.path.mkdir(parents=True, exist_ok=True)
    if command is not None:
        run.write_command(command)
    handler = _setup_logging(run)
    try:
        return _train(config, run, index, prepared_cache, group)
    finally:
        log.removeHandler(handler)
        handler.close()


@dataclass(frozen=True)
class TrainingSetup:
    """Everything the epochs need, built once per run."""

    config: TrainConfig
    group: distributed.ProcessGroup
    data: TrainingData
    model: CellClassifier
    loader: DataLoader[CellBatch]
    sampler: Sampler[int] | None
    loss: TrainingLoss


def _train(
    config: TrainConfig,
    run: RunDir,
    index: DatasetIndex | None,
    prepared_cache: PreparedCache | None,
    group: distributed.ProcessGroup,
) -> TrainResult:
    seed_everything(config.seed)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    index = index or index_training_data(config.data, config.extra_data)
    data = build_data(config, index, prepared_cache)
    if group.is_main:
        run.write_config(data.run_config(config, index))
    log.info("train %d images, validation %d images", len(data.train_images), len(data.val_images))

    # Under torchrun each process takes its own GPU (or the CPU); otherwise --device decides.
    device = group.device if group.launched else resolve_device(config.device)
    model = build_model(config, device)
    held_out = {image.subject for image in data.val_images}
    teachers = [t.to(device) for t in load_teachers(config, data.recipe, held_out)]
    generator = torch.Generator().manual_seed(config.seed)
    sampler, criterion = sampler_and_criterion(config, data, group, generator, device)
    loss = TrainingLoss(
        criterion, data.recipe, config.off_cell_heat_penalty, teachers, config.distillation_weight
    )
    loader = train_loader(config, data.train_set, sampler, generator, group, device)
    setup = TrainingSetup(config, group, data, model, loader, sampler, loss)
    keeper = CheckpointKeeper(run, config.monitor, config.checkpoint, write=group.is_main)
    if group.is_main:
        run.start_metrics()
    _fit(setup, run, keeper)
    keeper.finish(model)
    kept = keeper.kept
    return TrainResult(
        run_dir=run.path,
        validation=kept.predictions if kept else None,
        best_metrics=kept.metrics if kept else None,
    )


def _fit(setup: TrainingSetup, run: RunDir, keeper: CheckpointKeeper) -> None:
    """The phases' epochs: train, validate, log, keep, and stop early when told to."""
    config, group, model = setup.config, setup.group, setup.model
    stopping = EarlyStopping(config.patience)
    epochs_run = 0
    for phase in phases(config):
        if phase.epochs == 0:
            continue
        stepper = Stepper.for_phase(model, phase, config, group, max(1, len(setup.loader)))
        for epoch in range(1, phase.epochs + 1):
            started = time.perf_counter()
            epochs_run += 1
            if isinstance(setup.sampler, DistributedSampler):
                setup.sampler.set_epoch(epochs_run)
            description = f"{phase.name} {epoch}/{phase.epochs}"
            losses = train_one_epoch(stepper, setup.loader, setup.loss, phase, group, description)
            seconds = time.perf_counter() - started
            row = epoch_row(phase, epoch, losses, stepper, seconds, config.batch_size, group)
            validation = None
            if setup.data.val_set is not None:
                validation = evaluate_epoch(model, setup.data.val_set, config.batch_size)
                row.validation = validation.metrics
            if group.is_main:
                run.append_metrics(row)
                log.info("%s", row.to_line())
                tqdm.write(epoch_summary(row), file=sys.stderr)
            stopping.update(keeper.update(model, phase.name, epoch, validation))
            if phase.backbone_trainable and stopping.should_stop:
                log.info(
                    "early stop: %s did not improve for %d epochs",
                    config.monitor,
                    stopping.epochs_without_gain,
                )
                break
