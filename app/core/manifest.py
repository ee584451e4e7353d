"""The model card: everything needed to serve, trust and reproduce one exported model.

Written by `training export`, read by the server; both sides validate it with these
schemas so a manifest that does not describe its model fully is refused on load.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.core.portable_paths import portable_paths
from app.core.quality_checks import QualityReference
from app.core.recipe import PreprocessConfig

MANIFEST_FILENAME = "manifest.json"
ONNX_FILENAME = "model.onnx"
EXPLAIN_ONNX_FILENAME = "explain.onnx"
INPUT_NAME = "image"
LOGIT_OUTPUT = "logit"
PROBABILITY_OUTPUT = "probability_all"
GRADCAM_OUTPUT = "gradcam"

DATA_CITATION = (
    "Gupta, A., & Gupta, R. (2019). ALL Challenge dataset of ISBI 2019 [Data set]. "
    "The Cancer Imaging Archive. https://doi.org/10.7937/tcia.2019.dc64i46r"
)
DATA_LICENSE = "CC BY 3.0"
DEFAULT_INTENDED_USE = (
    "Research and screening aid: estimates how likely one segmented white-blood-cell image "
    "from a C-NMC-like acquisition is an ALL blast rather than a normal cell. Not a diagnosis; "
    "every result must be reviewed by a qualified person."
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Labels(StrictModel):
    positive: Literal["ALL"] = "ALL"
    negative: Literal["HEM"] = "HEM"


class ModelInput(StrictModel):
    name: str = INPUT_NAME
    layout: Literal["NCHW"] = "NCHW"
    dtype: Literal["float32"] = "float32"
    channels: Literal[3] = 3
    size: int = Field(gt=0)


class ModelOutputs(StrictModel):
    logit: str = LOGIT_OUTPUT
    probability: str = PROBABILITY_OUTPUT
    gradcam: str | None = Field(
        GRADCAM_OUTPUT,
        description="(N, h, w) Grad-CAM map at 1/16 of the input (ConvNeXt: the third "
        "stage; the last, at 1/32, was too coarse to fall on the cell), explain graph only.",
    )


class ThresholdChoice(StrictModel):
    value: float = Field(ge=0.0, le=1.0)
    source: str = Field(description="How it was chosen; only ever on validation data.")


class SubjectCounts(StrictModel):
    subject: str
    label: Literal["ALL", "HEM"]
    images: int = Field(ge=0)
    population: str | None = Field(
        None, description="Where the person comes from: fold1, external-folds, external-prelim."
    )


class TrainingData(StrictModel):
    dataset: str = "C-NMC 2019 (ISBI 2019 ALL challenge)"
    folds: list[str]
    subjects: list[SubjectCounts]
    images_all: int = Field(ge=0)
    images_hem: int = Field(ge=0)
    duplicates_removed: int = Field(0, ge=0)
    people_per_population: dict[str, int] = Field(
        default_factory=dict, description="People trained on, by population; empty: one source."
    )
    license: str = DATA_LICENSE
    citation: str = DATA_CITATION


UNSEEN_SUBJECTS_PROTOCOL = "unseen subjects"
"""How an evaluation on subjects outside the training data begins its protocol (written by
`python -m training external --record-in-card`, read by the model page)."""


class Evaluation(StrictModel):
    protocol: str = Field(description="What data, which split, at what threshold.")
    metrics: dict[str, float | int | list[list[int]]]
    per_subject_accuracy: dict[str, float] = Field(default_factory=dict)

    def number(self, key: str, default: float | None = None) -> float:
        """A scalar metric; KeyError without a default, TypeError for the confusion matrix."""
        value = self.metrics.get(key, default)
        if value is None:
            raise KeyError(key)
        if isinstance(value, list):
            raise TypeError(f"metric {key!r} is a matrix, not a number")
        return float(value)

    def confusion_matrix(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """[[tn, fp], [fn, tp]] at the evaluation's threshold."""
        value = self.metrics["confusion_matrix"]
        if not isinstance(value, list):
            raise TypeError("confusion_matrix is not a matrix")
        (tn, fp), (fn, tp) = value
        return (tn, fp), (fn, tp)


class ReliabilityBin(StrictModel):
    lower: float
    upper: float
    count: int = Field(ge=0)
    mean_predicted: float | None
    observed_fraction: float | None


class Calibration(StrictModel):
    """Served probability = sigmoid(logit / temperature + bias).

    Temperature scaling with a bias term (Platt scaling): class-balanced training shifts every
    logit by the log of the class ratio, which a temperature alone cannot undo."""

    method: Literal["temperature", "temperature_and_bias"] = "temperature_and_bias"
    temperature: float = Field(gt=0)
    bias: float = 0.0
    fitted_on: str
    ece_temperature_only: float | None = None
    ece_before: float
    ece_after: float
    reliability_before: list[ReliabilityBin]
    reliability_after: list[ReliabilityBin]

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """The calibrated logits: logit / temperature + bias."""
        return logits / self.temperature + self.bias

    def unapply(self, calibrated: np.ndarray) -> np.ndarray:
        """Back to the graph's logit scale (for probabilities averaged after calibration)."""
        return (calibrated - self.bias) * self.temperature


class TestTimeAugmentationCard(StrictModel):
    """The 8 flips and quarter turns, averaged: measured gain and cost, and the default."""

    default: bool
    transforms: int = 8
    measured_on: str
    roc_auc_without: float
    roc_auc_with: float
    balanced_accuracy_without: float
    balanced_accuracy_with: float
    latency_ms_without: float
    latency_ms_with: float


class InitWeights(StrictModel):
    """The weights a network started from, named so that anyone can get the same file: its
    package and version where it came from one, and its sha256 (never a local path)."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    package: str | None = None
    package_version: str | None = None

    def portable_name(self) -> str:
        """What the card's command and config say in place of the local path."""
        if self.package is None:
            return self.file
        return f"{self.package}=={self.package_version}:{self.file}"


class Provenance(StrictModel):
    training_command: str
    run_config: dict[str, object]
    software: dict[str, str]
    init_weights: InitWeights | None = None


class RateInterval(StrictModel):
    value: float | None
    low: float | None
    high: float | None


class HeldOutRates(StrictModel):
    """Local rates on the lab's held-out reviewed samples, as the performance page counts
    them (app/core/local_rates.py), with intervals from resampling whole samples."""

    sensitivity: RateInterval
    specificity: RateInterval
    balanced_accuracy: RateInterval
    samples: int
    cells: int
    method: str | None


class AdaptationGain(StrictModel):
    """Balanced accuracy of the adaptation minus the parent's on the same held-out samples,
    with a paired 95% interval from resampling whole samples (people)."""

    value: float
    low: float
    high: float
    resamples: int


class Adaptation(StrictModel):
    """How a site model was made from a bundled one with a lab's reviewed cells
    (`python -m training adapt`), and how both did on the lab's held-out subjects."""

    parent_id: str
    parent_version: str
    parent_onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    strength: Literal["recalibration", "head_refit"]
    reviews_source: str = Field(description="The reviews' file name (never its folder).")
    reviewed_cells: list[SubjectCounts]
    minimum_subjects_per_class: int = Field(ge=1)
    held_out_protocol: str
    before: Evaluation = Field(description="The parent as served, on the held-out subjects.")
    after: Evaluation = Field(description="The adaptation fitted without each held-out subject.")
    better_on_held_out: bool
    recommended: bool | None = Field(
        None,
        description="Adopt it only if true: the interval of its gain over the parent on held-out "
        "samples lies above 0. A store refuses to make a not-recommended model its default "
        "unless forced. None: adapted before this rule.",
    )
    gain: AdaptationGain | None = None
    local_before: HeldOutRates | None = Field(None, description="The parent as served.")
    local_after: HeldOutRates | None = Field(None, description="The adaptation, held out.")
    head_l2: float | None = Field(None, description="The pull toward the parent's head.")


def not_recommended(manifest: ModelManifest) -> bool:
    """An adapted model whose card says not to adopt it."""
    return manifest.adaptation is not None and manifest.adaptation.recommended is False


class ChangelogEntry(StrictModel):
    """One change to a model, newest last (MONAI bundles keep one): what a user of an earlier
    version needs to know before trusting this one."""

    version: str = Field(description="The model version the change produced or applies to.")
    date: date
    changes: str
    card_only: bool = Field(
        False, description="Only the card changed (an evaluation, a limitation); same weights."
    )


def changelog_entry(version: str, changes: str, *, card_only: bool = False) -> ChangelogEntry:
    """Today's entry (UTC): what the writer of a card changed in it."""
    return ChangelogEntry(
        version=version, date=datetime.now(UTC).date(), changes=changes, card_only=card_only
    )


class ModelManifest(StrictModel):
    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str
    created: datetime
    architecture: str
    head: Literal["timm", "paper"]
    parameters: int = Field(ge=0)
    input: ModelInput
    outputs: ModelOutputs = ModelOutputs()
    labels: Labels = Labels()
    threshold: ThresholdChoice
    preprocessing: PreprocessConfig
    training_data: TrainingData
    evaluations: list[Evaluation] = Field(default_factory=list)
    calibration: Calibration | None = None
    test_time_augmentation: TestTimeAugmentationCard | None = None
    quality_reference: QualityReference | None = None
    intended_use: str = DEFAULT_INTENDED_USE
    selection: str | None = Field(
        None,
        description="How this model was chosen against the others (see docs/model-selection.md), "
        "e.g. why the default is not the paper's architecture.",
    )
    limitations: list[str] = Field(default_factory=list)
    changelog: list[ChangelogEntry] = Field(default_factory=list)
    provenance: Provenance
    onnx_file: str = ONNX_FILENAME
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    explain_onnx_file: str | None = Field(
        None, description="The same network with a Grad-CAM output; None: no explanations."
    )
    explain_onnx_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    adaptation: Adaptation | None = Field(
        None, description="Set for a site model adapted from a bundled one; None otherwise."
    )


class ManifestError(ValueError):
    """A model directory whose manifest is missing, invalid or does not match its ONNX."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_sha256(model_dir: Path) -> str:
    """The checksum of the card itself (its threshold and recipe decide every answer); the
    store records it in store.json, so a card edited by hand is refused."""
    return file_sha256(model_dir / MANIFEST_FILENAME)


def write_manifest(manifest: ModelManifest, model_dir: Path) -> Path:
    """Every string is written with the writing machine's paths made portable."""
    path = model_dir / MANIFEST_FILENAME
    document = portable_paths(manifest.model_dump(mode="json"))
    ModelManifest.model_validate(document)  # still a card after the paths were shortened
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_manifest(model_dir: Path, *, verify_checksum: bool = True) -> ModelManifest:
    """Read and validate a model directory; the ONNX must be the file the card describes."""
    path = model_dir / MANIFEST_FILENAME
    if not path.is_file():
        raise ManifestError(f"{model_dir}: no {MANIFEST_FILENAME}")
    try:
        manifest = ModelManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ManifestError(f"{path}: invalid manifest: {error}") from error
    graphs = [(manifest.onnx_file, manifest.onnx_sha256)]
    if manifest.explain_onnx_file is not None:
        graphs.append((manifest.explain_onnx_file, manifest.explain_onnx_sha256 or ""))
    for name, checksum in graphs:
        onnx_path = model_dir / name
        if not onnx_path.is_file():
            raise ManifestError(f"{model_dir}: manifest names {name}, which is missing")
        if verify_checksum and file_sha256(onnx_path) != checksum:
            raise ManifestError(f"{onnx_path}: sha256 differs from the manifest")
    return manifest
