"""Every knob of a training run, saved as config.json beside its outputs (timm's habit)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.recipe import ContrastMethod, CropMethod, PreprocessConfig

HeadKind = Literal["timm", "paper"]
"""The classifier head (training/fit/models.py): timm's linear layer, or the paper's dense 256."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: Path = Field(
        description="The C-NMC root to train on: the official release (training_data/fold_*/"
        "{all,hem}, BMP) or a copy of it in PNG, e.g. ../shared/data/C-NMC_Leukemia."
    )
    out: Path = Field(
        description="Where the run (train, linear-head) or the cross-validation (cv, "
        "linear-head-cv) is written; its config is saved there beside the results."
    )
    extra_data: list[Path] = Field(
        default_factory=list,
        description="More roots of other people that join training (official training folds "
        "and/or the preliminary test set with its labels CSV, e.g. C-NMC_external); each "
        "image keeps its population for the reports.",
    )
    arch: str = "convnext_atto"
    head: HeadKind = "timm"
    img_size: int = Field(224, ge=16)
    epochs: int = Field(20, ge=0, description="Epochs of full-network training (phase 2).")
    head_epochs: int | None = Field(
        None, ge=0, description="Epochs on a frozen backbone first; default 1 with weights, else 0."
    )
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(2e-4, gt=0)
    head_lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    drop_path: float = Field(0.0, ge=0, lt=1)
    off_cell_heat_penalty: float = Field(
        0.0,
        ge=0,
        description="Weight of the share of Grad-CAM heat off the cell in the loss; when on, "
        "batch norm keeps its running statistics (see training/fit/explanation_penalty.py).",
    )
    pretrained: bool = False
    init_weights: Path | None = None
    teacher: Path | None = Field(
        None,
        description="Distil from this: a train run, or a cv directory (fold k's model teaches "
        "fold k; all fold models averaged teach a run without validation). Same recipe.",
    )
    distillation_weight: float = Field(
        0.5, ge=0, le=1, description="Share of the loss that matches the teacher's probability."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when present (bfloat16 autocast), else CPU."
    )

    contrast: ContrastMethod = ContrastMethod.CLAHE
    crop: CropMethod = CropMethod.CELL
    crop_size: int = Field(352, ge=8)
    foreground_threshold: int = Field(15, ge=0, le=254)
    standardize_cell_colour: bool = Field(
        False, description="Fix each cell's channel mean/std before everything else."
    )
    augment: bool = Field(
        True, description="Random flips, turns, affine and colour jitter on training images."
    )
    color_jitter: float = Field(0.1, ge=0)
    affine_degrees: float = Field(15.0, ge=0)
    scale_jitter: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Rescale each training cell by a factor within 1 ± this; 0.25 makes the "
        "absolute cell size (a fold-1 cue that fails on new patients) unreliable.",
    )
    intensity_jitter: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Per-cell gamma, contrast and brightness drawn within ± this "
        "(training/data/cell_appearance_augmentation.py).",
    )
    stain_jitter: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Per-cell scale and shift of each haematoxylin/eosin/DAB channel, ± this.",
    )
    subject_balanced: bool = Field(
        False,
        description="Sample so that each class, and each subject within its class, weighs "
        "the same per epoch: 3 HEM subjects must not become 3 prototypes of HEM.",
    )

    population_weights: dict[str, float] = Field(
        default_factory=dict,
        description="With --subject-balanced: scale a population's people within their class "
        "(e.g. external-prelim=2); each class still weighs the same.",
    )

    folds: int = Field(3, ge=2)
    val_fold: int | None = Field(None, ge=0, description="Hold out this subject-grouped fold.")
    val_subjects: list[str] | None = None
    val_official_fold: str | None = None
    monitor: Literal["roc_auc", "balanced_accuracy"] = "roc_auc"
    checkpoint: Literal["best", "last"] = Field(
        "best",
        description="The epoch that best.pt, export and CV use: best by --monitor on the "
        "validation subjects (optimistic as an estimate), or the last (honest for CV).",
    )
    patience: int | None = Field(None, ge=1)

    held_out_studies: bool = Field(
        True,
        description="cv: after the folds, the colour counterfactual and the Grad-CAM heat on the "
        "held-out subjects (minutes more on a CPU; the out-of-fold predictions do not need them).",
    )
    max_images_per_subject: int | None = Field(None, ge=1, description="Subsample, for smoke runs.")
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    workers: int = Field(0, ge=0)
    cache: bool = True

    @model_validator(mode="after")
    def _population_weights_not_negative(self) -> TrainConfig:
        negative = {k: v for k, v in self.population_weights.items() if v < 0}
        if negative:
            raise ValueError(f"population weights must be 0 or more: {negative}")
        return self

    @model_validator(mode="after")
    def _one_validation_choice(self) -> TrainConfig:
        chosen = [self.val_fold, self.val_subjects, self.val_official_fold]
        if sum(choice is not None for choice in chosen) > 1:
            raise ValueError("choose one of val_fold, val_subjects, val_official_fold")
        if self.val_fold is not None and self.val_fold >= self.folds:
            raise ValueError(f"val_fold must be below folds ({self.folds})")
        return self

    @property
    def has_validation(self) -> bool:
        return any(
            c is not None for c in (self.val_fold, self.val_subjects, self.val_official_fold)
        )

    @property
    def epoch_choice(self) -> str:
        if self.checkpoint == "last":
            return "last epoch"
        return f"best epoch by validation {self.monitor} (optimistic)"

    @property
    def resolved_head_epochs(self) -> int:
        if self.head_epochs is not None:
            return self.head_epochs
        return 1 if (self.pretrained or self.init_weights is not None) else 0

    def preprocess_config(self) -> PreprocessConfig:
        """The recipe before the training split's mean/std are measured."""
        return PreprocessConfig(
            contrast=self.contrast,
            crop=self.crop,
            crop_size=self.crop_size,
            foreground_threshold=self.foreground_threshold,
            standardize_cell_colour=self.standardize_cell_colour,
            input_size=self.img_size,
        )
