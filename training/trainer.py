"""Train one classifier: phase 1 on a frozen backbone (head only), phase 2 end to end.

A run directory holds everything needed to export or audit it (training/artifacts.py); which
epoch it keeps is training/checkpoints.py's business.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler, WeightedRandomSampler
from tqdm import tqdm

from app.core.classifier import sigmoid
from app.core.preprocessing import PreprocessConfig, channel_statistics
from training import distributed
from training.artifacts import EpochRow, RunConfig, RunDir
from training.cell_appearance_augmentation import cell_appearance_randomization
from training.cell_dataset import (
    Augmentation,
    CellDataset,
    PreparedCache,
    morphology_preserving_augmentation,
)
from training.checkpoints import CheckpointKeeper, Validation
from training.classification_metrics import BinaryMetrics, binary_metrics
from training.dataset_index import (
    LABEL_ALL,
    LABEL_NAMES,
    CellImage,
    DatasetError,
    DatasetIndex,
    index_training_data,
)
from training.distillation import distillation_loss, load_teachers
from training.explanation_penalty import (
    logits_and_heat_off_cell,
    use_running_batch_norm_statistics,
)
from training.models import CellClassifier, create_classifier, set_backbone_trainable
from training.predictions import Predictions
from training.splits import Split, make_split, subsample_per_subject
from training.train_config import TrainConfig

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


def describe_subjects(images: Sequence[CellImage]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for image in images:
        counts[image.subject] += 1
    return dict(sorted(counts.items()))


def subject_balanced_weights(
    images: Sequence[CellImage], population_weights: Mapping[str, float] | None = None
) -> list[float]:
    """Per-image sampling weights under which every class present, and every subject within
    its class, is drawn equally often: 30 people with 81 cells weigh as much as 30 people with
    3,000. `population_weights` scales a population's people up or down within their class
    (missing populations count 1); each class still weighs the same."""
    factors = population_weights or {}
    per_subject = Counter(image.subject for image in images)
    people = {(i.subject, i.label, i.population) for i in images}
    class_mass: Counter[int] = Counter()
    for _, label, population in people:
        class_mass[label] += factors.get(population, 1.0)
    empty = [LABEL_NAMES[label] for label, mass in class_mass.items() if mass <= 0]
    if empty:
        raise DatasetError(
            f"the population weights leave no {' or '.join(empty)} person to learn from"
        )
    return [
        factors.get(i.population, 1.0)
        / (len(class_mass) * class_mass[i.label] * per_subject[i.subject])
        for i in images
    ]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


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
class TrainingData:
    """The split's datasets, both built with the recipe measured on the training images."""

    train_images: list[CellImage]
    val_images: list[CellImage]
    train_set: CellDataset
    val_set: CellDataset | None
    recipe: PreprocessConfig
    split: Split | None

    def run_config(self, config: TrainConfig, index: DatasetIndex) -> RunConfig:
        return RunConfig(
            train=config,
            preprocessing=self.recipe,
            split=self.split.name if self.split else None,
            train_subjects=describe_subjects(self.train_images),
            validation_subjects=describe_subjects(self.val_images),
            subject_populations={
                image.subject: image.population
                for image in (*self.train_images, *self.val_images)
                if image.population
            },
            duplicates_removed=index.duplicates_removed,
            torch=torch.__version__,
        )


def augmentation_for(config: TrainConfig) -> Augmentation | None:
    """The training images' random changes; None with --no-augment."""
    appearance = None
    if config.intensity_jitter > 0 or config.stain_jitter > 0:
        appearance = cell_appearance_randomization(
            intensity=config.intensity_jitter,
            stain=config.stain_jitter,
            foreground_threshold=config.foreground_threshold,
        )
    if not config.augment:
        return None
    return morphology_preserving_augmentation(
        affine_degrees=config.affine_degrees,
        scale=(1.0 - config.scale_jitter, 1.0 + config.scale_jitter),
        color_jitter=config.color_jitter,
        before=appearance,
    )


def measured_recipe(
    config: TrainConfig, images: Sequence[CellImage], cache: bool | PreparedCache
) -> PreprocessConfig:
    """The recipe with the channel mean/std of the prepared training images. Preparing does
    not depend on them, so the images prepared here stay in a shared `cache` for training."""
    unmeasured = config.preprocess_config()
    prepared = CellDataset(images, unmeasured, cache=cache).iter_prepared()
    mean, std = channel_statistics(prepared)
    recipe = unmeasured.model_copy(update={"mean": mean, "std": std})
    return PreprocessConfig.model_validate(recipe.model_dump())


def build_data(
    config: TrainConfig, index: DatasetIndex, prepared_cache: PreparedCache | None
) -> TrainingData:
    images = subsample_per_subject(index.images, config.max_images_per_subject)
    split = make_split(config, images)
    train_images = list(split.train) if split else images
    val_images = list(split.validation) if split else []
    augmentation = augmentation_for(config)
    cache: bool | PreparedCache = config.cache
    if config.cache:
        cache = prepared_cache if prepared_cache is not None else {}
    recipe = measured_recipe(config, train_images, cache)
    return TrainingData(
        train_images=train_images,
        val_images=val_images,
        train_set=CellDataset(train_images, recipe, augmentation, cache=cache),
        val_set=CellDataset(val_images, recipe, cache=cache) if val_images else None,
        recipe=recipe,
        split=split,
    )


def build_model(config: TrainConfig, device: torch.device) -> CellClassifier:
    model = create_classifier(
        config.arch,
        config.head,
        pretrained=config.pretrained,
        init_weights=config.init_weights,
        drop_path_rate=config.drop_path,
    )
    return model.to(device)


def sampler_and_criterion(
    config: TrainConfig,
    data: TrainingData,
    group: distributed.ProcessGroup,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[Sampler[int] | None, nn.Module]:
    """Both classes count equally: by drawing them equally often (--subject-balanced), or by
    weighing ALL (the majority class in C-NMC) down in the loss."""
    labels = data.train_set.labels()
    positives = int((labels == LABEL_ALL).sum())
    negatives = len(labels) - positives
    sampler: Sampler[int] | None = distributed.sampler(data.train_set, group, config.seed)
    if config.subject_balanced and sampler is not None:
        raise ValueError("--subject-balanced is not available with torchrun yet")
    if config.subject_balanced:
        pos_weight = torch.tensor(1.0)
        sampler = WeightedRandomSampler(
            subject_balanced_weights(data.train_images, config.population_weights),
            num_samples=len(data.train_images),
            replacement=True,
            generator=generator,
        )
    else:
        pos_weight = torch.tensor(negatives / positives if positives and negatives else 1.0)
    return sampler, nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device))


def train_loader(
    config: TrainConfig,
    dataset: CellDataset,
    sampler: Sampler[int] | None,
    generator: torch.Generator,
    group: distributed.ProcessGroup,
    device: torch.device,
) -> DataLoader:
    batch_size = distributed.per_process_batch_size(config.batch_size, group)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(sampler if sampler is not None else dataset) > batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",
        generator=generator if sampler is None else None,
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
    loader: DataLoader,
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
        loss.backward()
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


def _epoch_summary(row: EpochRow) -> str:
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
    loader: DataLoader
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
    teachers = [teacher.to(device) for teacher in load_teachers(config, data.recipe)]
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
                tqdm.write(_epoch_summary(row), file=sys.stderr)
            stopping.update(keeper.update(model, phase.name, epoch, validation))
            if phase.backbone_trainable and stopping.should_stop:
                log.info(
                    "early stop: %s did not improve for %d epochs",
                    config.monitor,
                    stopping.epochs_without_gain,
                )
                break
