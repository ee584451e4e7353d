"""The split's data for one run: the datasets with the measured recipe, per-subject
sampling weights, the sampler and loss that keep the classes equal, the training loader."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from app.core.recipe import PreprocessConfig, channel_statistics
from training.data.cell_appearance_augmentation import cell_appearance_randomization
from training.data.cell_dataset import (
    Augmentation,
    CellBatch,
    CellDataset,
    PreparedCache,
    morphology_preserving_augmentation,
)
from training.data.dataset_index import (
    LABEL_ALL,
    LABEL_NAMES,
    CellImage,
    DatasetError,
    DatasetIndex,
)
from training.data.splits import (
    Split,
    held_out_subjects_split,
    official_fold_split,
    subject_grouped_folds,
    subsample_per_subject,
)
from training.fit import distributed
from training.fit.artifacts import RunConfig
from training.fit.train_config import TrainConfig


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
    class_mass: dict[int, float] = defaultdict(float)
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


def make_split(config: TrainConfig, images: Sequence[CellImage]) -> Split | None:
    """The split a training configuration asks for; None without validation."""
    if config.val_fold is not None:
        return subject_grouped_folds(images, config.folds, config.seed)[config.val_fold]
    if config.val_subjects is not None:
        return held_out_subjects_split(images, config.val_subjects)
    if config.val_official_fold is not None:
        return official_fold_split(images, config.val_official_fold)
    return None


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
) -> DataLoader[CellBatch]:
    batch_size = distributed.per_process_batch_size(config.batch_size, group)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=(len(dataset) if sampler is None else len(cast(Sized, sampler))) > batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",
        generator=generator if sampler is None else None,
    )
