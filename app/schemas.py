"""Response bodies of the JSON API; FastAPI publishes them in the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.manifest import ModelManifest
from app.quality_checks import QualityWarning


class ErrorResponse(BaseModel):
    detail: str | list[object]


class ModelRef(BaseModel):
    model_config = {"protected_namespaces": ()}

    id: str
    version: str


class Timings(BaseModel):
    decode: float
    preprocess: float
    inference: float
    total: float


class DisplayImages(BaseModel):
    """PNG data URIs for people: the input, its enhanced version and the model's crop."""

    original: str
    enhanced: str
    cropped: str


class Explanation(BaseModel):
    """Grad-CAM (at 1/16 of the input resolution) over the model's input crop."""

    heatmap: str = Field(description="PNG data URI: the heat painted over the crop.")
    overlay: str = Field(description="PNG data URI (RGBA): the heat alone, opacity = heat.")
    heat_in_cell: float | None = Field(description="Share of the heat on the cell's pixels.")
    on_cell: bool | None = Field(
        description="At least 90% of the heat on the cell. When false, the map shows evidence "
        "that lies mostly around the cell: do not read it as 'these parts of the cell mattered'."
    )


class Prediction(BaseModel):
    label: Literal["ALL", "HEM"]
    probability_all: float = Field(ge=0.0, le=1.0)
    threshold: float
    model: ModelRef
    warnings: list[QualityWarning]
    timings_ms: Timings
    request_id: str
    tta: bool = Field(False, description="Whether the 8-view test-time augmentation was used.")
    views: DisplayImages | None = None
    heatmap: str | None = Field(None, description="With ?explain=true: Grad-CAM over the crop.")
    explanation: Explanation | None = None


class BatchError(BaseModel):
    status_code: int
    detail: str


class BatchItem(BaseModel):
    filename: str
    status: Literal["ok", "error"]
    prediction: Prediction | None = None
    error: BatchError | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]


class ModelSummary(BaseModel):
    id: str
    version: str
    architecture: str
    input_size: int
    threshold: float
    default: bool
    provider: str = Field(description="onnxruntime execution provider running it.")


class ModelList(BaseModel):
    default: str
    models: list[ModelSummary]


class ModelCard(BaseModel):
    default: bool
    manifest: ModelManifest


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "starting"]
    models: list[str]
    providers: dict[str, str] = Field(
        description="onnxruntime execution provider of each model (CUDA or the CPU fallback)."
    )
