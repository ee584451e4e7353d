"""The JSON API's own bodies: errors, batches, model lists, health, whoami, the sample list.

An answer that is exactly a domain object (a prediction, a decision, a sample's report, the
local performance) is answered as that object, from app/core/domain: one model, so the API
and the records never drift apart. The bodies here are the ones only HTTP needs, built from
those objects. FastAPI publishes both in the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.core.domain.predictions import Prediction
from app.core.domain.reviews import DURABLE_HELP
from app.core.domain.samples import SampleSummary
from app.core.manifest import ModelManifest


class ErrorResponse(BaseModel):
    detail: str | list[object]


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
    adapted_from: str | None = Field(
        None, description="'<parent id> v<version>' for a site model made by `training adapt`."
    )
    better_on_held_out: bool | None = Field(
        None, description="Whether the adaptation beat its parent on the site's held-out subjects."
    )


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


class WhoAmI(BaseModel):
    """Whom the server takes the caller for, so that a page can show the name it records."""

    reviewer: str | None = Field(
        description="The name a decision by this caller is recorded under; null where the "
        "server takes a typed name (free_text) or the key names nobody (shared_key)."
    )
    reviewer_source: Literal["free_text", "sso_header", "reviewer_key", "shared_key"] = Field(
        description="reviewer_key or sso_header: the server names the reviewer, a typed name "
        "is not asked for; free_text: the server authenticates nobody, the reviewer types a "
        "name; shared_key: the lab's shared key opens the API but records no decision (a "
        "reviewer's own key is needed)."
    )
    durable: bool = Field(True, description=DURABLE_HELP)


class SampleList(BaseModel):
    samples: list[SampleSummary]
    total: int
    limit: int
    offset: int
    durable: bool = Field(True, description=DURABLE_HELP)
