"""Response bodies of the JSON API; FastAPI publishes them in the OpenAPI schema at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.core.answer_states import AnswerState
from app.core.identities import REVIEWER_NAME_MAX, clean_reviewer_name
from app.core.manifest import ModelManifest
from app.core.quality_checks import QualityWarning


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
    label: Literal["ALL", "HEM"] | None = Field(
        description="The model's call at its threshold; null when the image is not assessable "
        "(the probability stays available, describing nothing useful)."
    )
    probability_all: float = Field(ge=0.0, le=1.0)
    threshold: float
    model: ModelRef
    warnings: list[QualityWarning]
    timings_ms: Timings
    request_id: str
    tta: bool = Field(False, description="Whether the 8-view test-time augmentation was used.")
    views: DisplayImages | None = None
    explanation: Explanation | None = Field(
        None,
        description="With ?explain=true, where the model has an explain graph: the Grad-CAM "
        "map painted over the crop, the heat alone, and how much of it lies on the cell.",
    )
    assessable: bool = Field(
        True,
        description="False when the image is not one segmented cell on black (no cell, no "
        "background, several objects): the probability then describes nothing useful.",
    )
    state: AnswerState = Field(
        "suggests_normal",
        description="How to read the answer: a suggestion (ALL-like or normal), indeterminate "
        "(within the uncertainty band of the threshold) or not assessable.",
    )
    image_sha256: str | None = Field(None, description="sha256 of the uploaded file's bytes.")
    sample_id: str | None = Field(None, description="The sample it was scored for, if any.")
    repeat_of: str | None = Field(
        None,
        description="With ?sample_id: the request that first scored these same bytes in the "
        "sample. The image is one cell of the sample and counts once.",
    )
    sample_id_warning: str | None = Field(
        None,
        description="With ?sample_id: set when the id's letters could be a person's name (it "
        "holds no date, or it would have been refused); the lab's number belongs there.",
    )

    @property
    def side_of_threshold(self) -> Literal["ALL", "HEM"]:
        """The model's side of its threshold, assessable or not: what the records keep."""
        return "ALL" if self.probability_all >= self.threshold else "HEM"


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


ReviewDecision = Literal["ALL", "HEM", "not_assessable"]
# Where a decision's reviewer name came from: typed by the client (no identity configured),
# the sign-on proxy's header, or the reviewer's own API key.
ReviewerSource = Literal["free_text", "sso_header", "reviewer_key"]


DURABLE_HELP = (
    "False only where the server keeps its records in memory (LEUKOLENS_RECORDS_IN_MEMORY, "
    "for demonstrations): they are lost when it stops."
)


class ReviewFields(BaseModel):
    """What a decision says: which image of which sample, the call, and a comment."""

    request_id: str = Field(min_length=1, max_length=128)
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sample_id: str = Field(
        min_length=1,
        description="The sample's lab number (LEUKOLENS_SAMPLE_ID_PATTERN), never a name.",
    )
    decision: ReviewDecision
    comment: str = Field("", max_length=2000)
    amendment: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Why this decision changes a signed-off sample: required once the sample "
        "is signed off (else 409), refused before (409). The sample becomes 'amended'.",
    )


class ReviewRequest(ReviewFields):
    """A reviewer's decision on one scored image; the image itself is never sent."""

    reviewer: str | None = Field(
        None,
        min_length=1,
        max_length=REVIEWER_NAME_MAX,
        description="Who decided: one person's name (no comma, no control character; "
        "surrounding spaces are dropped). Required where the server authenticates no "
        "reviewer; where it does (sign-on header, reviewer's own key), optional and, if sent, "
        "it must be the authenticated name (else 403).",
    )

    @field_validator("reviewer")
    @classmethod
    def _one_person(cls, reviewer: str | None) -> str | None:
        return None if reviewer is None else clean_reviewer_name(reviewer)


class ReviewRecord(ReviewFields):
    id: int
    time: datetime = Field(description="When it was recorded (ISO 8601, UTC).")
    reviewer: str = Field(description="The name the decision is recorded under.")
    reviewer_source: ReviewerSource = Field(
        "free_text",
        description="free_text: typed by the client, unverified (no identity configured, and "
        "every decision recorded before 0.3); sso_header: the lab's sign-on proxy named the "
        "user; reviewer_key: the reviewer's own API key did.",
    )
    durable: bool = Field(True, description=DURABLE_HELP)


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
