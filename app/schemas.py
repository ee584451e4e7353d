"""Response bodies of the JSON API; FastAPI publishes them in the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.manifest import ModelManifest


class ErrorResponse(BaseModel):
    detail: str | list[object]


class ModelRef(BaseModel):
    model_config = {"protected_namespaces": ()}

    id: str
    version: str


class QualityWarning(BaseModel):
    code: str = Field(description="Stable identifier, e.g. no_background.")
    message: str


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


class Prediction(BaseModel):
    label: Literal["ALL", "HEM"]
    probability_all: float = Field(ge=0.0, le=1.0)
    threshold: float
    model: ModelRef
    warnings: list[QualityWarning]
    timings_ms: Timings
    request_id: str
    views: DisplayImages | None = None


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
