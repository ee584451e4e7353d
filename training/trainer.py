"""Train one classifier: phase 1 on a frozen backbone (head only), phase 2 end to end.

A run directory holds everything needed to export or audit it (training/artifacts.py).
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from app.inference import sigmoid
from app.preprocessing import PreprocessConfig, channel_statistics
from training import distributed
from training.artifacts import BEST_CHECKPOINT, EpochRow, RunConfig, RunDir
from training.cell_appearance_augmentation import cell_appearance_randomization
from training.cell_dataset import CellDataset, PreparedCache, morphology_preserving_augmentation
from training.classification_metrics import BinaryMetrics, binary_metrics
from training.dataset_index import LABEL_ALL, CellImage, DatasetIndex, index_dataset
from training.explanation_penalty import (
    logits_and_heat_off_cell,
    use_running_batch_norm_statistics,
)
from training.models import CellClassifier, create_classifier, set_backbone_trainable
from training.predictions import Predictions
from training.splits import (
    Split,
    held_out_subjects_split,
    official_fold_split,
    subject_grouped_folds,
)
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


def subsample_per_subject(images: Sequence[CellImage], limit: int | None) -> list[CellImage]:
    if limit is None:
        return list(images)
    taken: dict[str, int] = defaultdict(int)
    kept = []
    for image in images:
        if taken[image.subject] < limit:
            kept.append(image)
            taken[image.subject] += 1
    return kept


def make_split(config: TrainConfig, images: Sequence[CellImage]) -> Split | None:
    if config.val_fold is not None:
        return subject_grouped_folds(images, config.folds, config.seed)[config.val_fold]
    if config.val_subjects is not None:
        return held_out_subjects_split(images, config.val_subjects)
    if config.val_official_fold is not None:
        return official_fold_split(images, config.val_official_fold)
    return None


def describe_subjects(images: Sequence[CellImage]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for image in images:
        counts[image.subject] += 1
    return dict(sorted(counts.items()))


def subject_balanced_weights(images: Sequence[CellImage]) -> list[float]:
    """Per-image sampling weights under which every class present, and every subject within
    its class, is drawn equally often."""
    per_subject = Counter(image.subject for image in images)
    subjects_per_label = Counter(label for _, label in {(i.subject, i.label) for i in images})
    return [
        1.0 / (len(subjects_per_label) * subjects_per_label[i.label] * per_subject[i.subject])
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
    index = index or index_dataset(config.data)
    images = subsample_per_subject(index.images, config.max_images_per_subject)
    split = make_split(config, images)
    train_images = list(split.train) if split else images
    val_images = list(split.validation) if split else []

    appearance = None
    if config.intensity_jitter > 0 or config.stain_jitter > 0:
        appearance = cell_appearance_randomization(
            intensity=config.intensity_jitter,
            stain=config.stain_jitter,
            foreground_threshold=config.foreground_threshold,
        )
    augmentation = (
        morphology_preserving_augmentation(
            affine_degrees=config.affine_degrees,
            scale=(1.0 - config.scale_jitter, 1.0 + config.scale_jitter),
            color_jitter=config.color_jitter,
            before=appearance,
        )
        if config.augment
        else None
    )
    cache: bool | PreparedCache = config.cache
    if config.cache:
        cache = prepared_cache if prepared_cache is not None else {}
    train_set = CellDataset(train_images, config.preprocess_config(), augmentation, cache=cache)
    mean, std = channel_statistics(train_set.iter_prepared())
    recipe = config.preprocess_config().model_copy(update={"mean": mean, "std": std})
    recipe = PreprocessConfig.model_validate(recipe.model_dump())
    train_set.config = recipe
    val_set = CellDataset(val_images, recipe, cache=cache) if val_images else None

    resolved = RunConfig(
        train=config,
        preprocessing=recipe,
        split=split.name if split else None,
        train_subjects=describe_subjects(train_images),
        validation_subjects=describe_subjects(val_images),
        duplicates_removed=index.duplicates_removed,
        torch=torch.__version__,
    )
    if group.is_main:
        run.write_config(resolved)
    log.info("train %d images, validation %d images", len(train_images), len(val_images))

    # Under torchrun each process takes its own GPU (or the CPU); otherwise --device decides.
    device = group.device if group.launched else resolve_device(config.device)
    model = create_classifier(
        config.arch,
        config.head,
        pretrained=config.pretrained,
        init_weights=config.init_weights,
        drop_path_rate=config.drop_path,
    ).to(device)
    teachers = [m.to(device) for m in load_teachers(config, recipe)]
    labels = train_set.labels()
    positives = int((labels == LABEL_ALL).sum())
    negatives = len(labels) - positives
    generator = torch.Generator().manual_seed(config.seed)
    sampler: torch.utils.data.Sampler[int] | None = distributed.sampler(
        train_set, group, config.seed
    )
    if config.subject_balanced and sampler is not None:
        raise ValueError("--subject-balanced is not available with torchrun yet")
    if config.subject_balanced:
        # The sampler already draws both classes equally often.
        pos_weight = torch.tensor(1.0)
        sampler = WeightedRandomSampler(
            subject_balanced_weights(train_images),
            num_samples=len(train_images),
            replacement=True,
            generator=generator,
        )
    else:
        # Weigh ALL (the majority class in C-NMC) down so both classes count equally.
        pos_weight = torch.tensor(negatives / positives if positives and negatives else 1.0)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device))
    batch_size = distributed.per_process_batch_size(config.batch_size, group)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(sampler if sampler is not None else train_set) > batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",
        generator=generator if sampler is None else None,
    )

    if group.is_main:
        run.start_metrics()
    epochs_run = 0
    best_score = -math.inf
    best_metrics: BinaryMetrics | None = None
    best_predictions: Predictions | None = None
    epochs_without_gain = 0
    phases = [("head", config.resolved_head_epochs, config.head_lr, False)]
    phases.append(("full", config.epochs, config.lr, True))
    for phase, epochs, lr, backbone_trainable in phases:
        if epochs == 0:
            continue
        set_backbone_trainable(model, backbone_trainable)
        trained = distributed.wrap(model, group)  # per phase: DDP tracks the trainable set
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(parameters, lr=lr, weight_decay=config.weight_decay)
        steps_per_epoch = max(1, len(loader))
        warmup = round(config.warmup_epochs * steps_per_epoch) if backbone_trainable else 0
        scheduler = warmup_cosine(optimizer, warmup, epochs * steps_per_epoch)
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            epochs_run += 1
            if isinstance(sampler, torch.utils.data.DistributedSampler):
                sampler.set_epoch(epochs_run)
            model.train()
            if not backbone_trainable:
                model.backbone.eval()  # frozen means frozen batch-norm statistics too
            elif config.off_cell_heat_penalty > 0:
                use_running_batch_norm_statistics(model)
            losses, off_cell_shares = [], []
            progress = tqdm(loader, desc=f"{phase} {epoch}/{epochs}", leave=False)
            for batch, targets in progress:
                batch = batch.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device):
                    if config.off_cell_heat_penalty > 0:
                        logits, off_cell = logits_and_heat_off_cell(model, batch, recipe)
                        off_cell_share = off_cell.mean()
                        loss = criterion(logits, targets)
                        loss = loss + config.off_cell_heat_penalty * off_cell_share
                        off_cell_shares.append(off_cell_share.item())
                    else:
                        logits = trained(batch)
                        loss = criterion(logits, targets)
                    if teachers:
                        loss = distillation_loss(
                            logits, loss, teachers, batch, config.distillation_weight
                        )
                loss.backward()
                if config.off_cell_heat_penalty > 0:
                    distributed.average_gradients(model, group)  # not through DDP's forward
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                progress.set_postfix(loss=f"{np.mean(losses):.4f}")
            seconds = time.perf_counter() - started
            row = EpochRow(
                phase=phase,
                epoch=epoch,
                train_loss=distributed.mean_over_processes(
                    float(np.mean(losses)) if losses else float("nan"), group
                ),
                lr=optimizer.param_groups[0]["lr"],
                seconds=round(seconds, 2),
                images_per_second=round(len(losses) * config.batch_size / seconds, 2),
            )
            if off_cell_shares:
                row.train_heat_off_cell = round(float(np.mean(off_cell_shares)), 4)
            improved = keep = True
            if val_set is not None:
                predictions = predict(model, val_set, config.batch_size)
                metrics = binary_metrics(predictions.labels, predictions.probabilities, 0.5)
                row.validation = metrics
                score = metrics.monitored(config.monitor)
                improved = not math.isnan(score) and score > best_score
                best_score = max(best_score, score) if improved else best_score
                keep = improved or config.checkpoint == "last"
                if keep:
                    best_metrics, best_predictions = metrics, predictions
            if group.is_main:
                run.append_metrics(row)
                log.info("%s", row.to_line())
                tqdm.write(_epoch_summary(row), file=sys.stderr)
                checkpoint = {"model": model.state_dict(), "phase": phase, "epoch": epoch}
                torch.save(checkpoint, run.last_checkpoint)
                if keep:
                    torch.save(checkpoint, run.best_checkpoint)
            epochs_without_gain = 0 if improved else epochs_without_gain + 1
            if (
                backbone_trainable
                and config.patience is not None
                and epochs_without_gain >= config.patience
            ):
                log.info(
                    "early stop: %s did not improve for %d epochs",
                    config.monitor,
                    epochs_without_gain,
                )
                break
    if not group.is_main:
        return TrainResult(run_dir=run.path, validation=best_predictions, best_metrics=best_metrics)
    if not run.best_checkpoint.exists():
        torch.save({"model": model.state_dict(), "phase": "none", "epoch": 0}, run.best_checkpoint)
    if best_predictions is not None:
        run.write_validation_predictions(best_predictions)
    return TrainResult(run_dir=run.path, validation=best_predictions, best_metrics=best_metrics)


def load_teachers(config: TrainConfig, recipe: PreprocessConfig) -> list[CellClassifier]:
    """The teacher model(s) of a distillation run, frozen; they must read the same recipe."""
    if config.teacher is None:
        return []
    fold_runs = sorted(config.teacher.glob("fold[0-9]*"))
    if not fold_runs:
        runs = [config.teacher]
    elif config.val_fold is not None:
        runs = [config.teacher / f"fold{config.val_fold}"]
    else:
        runs = fold_runs
    teachers = []
    for run in runs:
        teacher_recipe = RunDir(run).read_config().preprocessing
        ignored = {"mean", "std"}  # measured per split, on the same subjects
        if teacher_recipe.model_dump(exclude=ignored) != recipe.model_dump(exclude=ignored):
            raise ValueError(f"teacher {run} was trained with another recipe")
        teacher = load_trained_model(run)
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        teachers.append(teacher)
    return teachers


def distillation_loss(
    logits: torch.Tensor,
    label_loss: torch.Tensor,
    teachers: Sequence[CellClassifier],
    batch: torch.Tensor,
    weight: float,
) -> torch.Tensor:
    """Mix the label loss with the cross-entropy to the teachers' mean probability on the same
    augmented batch (Hinton et al., 2015, with one logit): the student learns what the teacher
    learned under the augmentations, not just the 14 subjects' labels."""
    with torch.no_grad():
        target = torch.sigmoid(torch.stack([t(batch) for t in teachers]).float().mean(dim=0))
    soft = nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
    return (1 - weight) * label_loss + weight * soft


def load_trained_model(run_dir: Path, checkpoint: str = BEST_CHECKPOINT) -> CellClassifier:
    config = RunDir(run_dir).read_config().train
    model = create_classifier(config.arch, config.head, drop_path_rate=config.drop_path)
    state = torch.load(run_dir / checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval()
