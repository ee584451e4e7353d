"""Response bodies of the JSON API; FastAPI publishes them in the OpenAPI schema at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.answer_states import AnswerState
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


class ReviewRequest(BaseModel):
    """A reviewer's decision on one scored image; the image itself is never sent."""

    request_id: str = Field(min_length=1, max_length=128)
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sample_id: str = Field(
        min_length=1,
        description="The sample's lab number (LEUKOLENS_SAMPLE_ID_PATTERN), never a name.",
    )
    decision: ReviewDecision
    reviewer: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Who decided. Required where the server authenticates no reviewer; where "
        "it does (sign-on header, reviewer's own key), optional and, if sent, it must be the "
        "authenticated name (else 403).",
    )
    comment: str = Field("", max_length=2000)
    amendment: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Why this decision changes a signed-off sample: required once the sample "
        "is signed off (else 409), refused before (409). The sample becomes 'amended'.",
    )


class ReviewRecord(ReviewRequest):
    id: int
    time: datetime = Field(description="When it was recorded (ISO 8601, UTC).")
    reviewer: str = Field(description="The name the decision is recorded under.")
    reviewer_source: ReviewerSource = Field(
        "free_text",
        description="free_text: typed by the client, unverified (no identity configured, and "
        "every decision recorded before 0.3); sso_header: the lab's sign-on proxy named the "
        "user; reviewer_key: the reviewer's own API key did.",
    )


class SamplePrediction(BaseModel):
    model_config = {"protected_namespaces": ()}

    time: datetime = Field(description="When it was scored (ISO 8601, UTC).")
    request_id: str
    image_sha256: str
    model_id: str
    model_version: str
    probability_all: float
    label: Literal["ALL", "HEM"] | None = Field(description="Null when not assessable.")
    state: AnswerState
    assessable: bool
    threshold: float | None = Field(None, description="Null for rows recorded before 0.2.")
    tta: bool | None = None
    warnings: list[str] = Field(default_factory=list, description="Quality warnings' codes.")


class SampleSummary(BaseModel):
    sample_id: str
    cells: int = Field(description="Images of the sample, each counted once.")
    reviewed: int = Field(description="Cells with at least one reviewer's decision.")
    last_change: datetime = Field(description="When its latest record was made (ISO 8601, UTC).")


class SampleList(BaseModel):
    samples: list[SampleSummary]
    total: int
    limit: int
    offset: int


class SampleCounts(BaseModel):
    images: int
    by_state: dict[AnswerState, int]
    decided: int
    by_decision: dict[ReviewDecision, int]
    model_suggested_all_like_share: float | None = Field(
        description="The model's suggestions alone: cells it suggests ALL-like among the cells "
        "it could assess (indeterminate ones not counted as ALL-like); no reviewer's decision "
        "enters it. The sample's headline is `headline.share`."
    )


class BlastShare(BaseModel):
    """A sample's share of blast-like cells: a research aid, never a diagnosis."""

    observed: float | None = Field(
        None, description="Share of assessable cells called ALL-like (reviewers' calls first)."
    )
    corrected: float | None = Field(
        None,
        description="Estimated true share of blast-like cells given the model's held-out "
        "sensitivity and specificity (Rogan-Gladen, clipped to [0, 1]); reviewed cells count "
        "as decided.",
    )
    ci_low: float | None = None
    ci_high: float | None = None
    level: float = Field(0.95, description="Coverage aimed at by [ci_low, ci_high].")
    interval_width: float | None = None
    readable_width: float = Field(description="Wider intervals than this are too wide to read.")
    too_wide: bool = False
    more_cells_needed: int | None = Field(
        None,
        description="Roughly how many more assessable cells would narrow the interval to the "
        "readable width; null when it is readable or more cells cannot narrow it enough (the "
        "card's rates are too uncertain or vary too much between its held-out subjects).",
    )
    n_cells: int = Field(description="Images scored for the sample.")
    n_assessable: int = Field(description="Cells counted: assessable or decided by a reviewer.")
    n_reviewed: int = Field(description="Counted cells whose call is a reviewer's decision.")
    n_reviewed_all: int = 0
    n_model_called: int = Field(description="Counted cells whose call is the model's.")
    sensitivity: float | None = None
    specificity: float | None = None
    sensitivity_counts: list[int] | None = Field(
        None, description="[true positives, false negatives] the sensitivity came from."
    )
    specificity_counts: list[int] | None = Field(
        None, description="[true negatives, false positives] the specificity came from."
    )
    source: str | None = Field(None, description="The evaluation the counts come from.")
    rates: Literal["unseen_patients", "held_out_training_subjects"] | None = Field(
        None,
        description="Which error rates correct the share: the card's rates on patients outside "
        "its training data (preferred: a new sample is such a patient), or, where the card has "
        "none, its out-of-fold rates on held-out subjects of its own training batch.",
    )
    note: str = ""


SampleStatus = Literal["preliminary", "final", "amended"]


class SignOffRecord(BaseModel):
    """A person's sign-off of the sample, bound to what they signed."""

    id: int
    by: str = Field(description="The signer: the authenticated reviewer, or the typed name.")
    by_source: ReviewerSource
    time: datetime = Field(description="When it was signed (ISO 8601, UTC).")
    comment: str
    cells: int = Field(description="Cells of the sample when it was signed.")
    undecided_cells: int = Field(description="Cells left undecided at sign-off (0 unless left).")
    content_sha256: str = Field(
        description="SHA-256 of the sample's canonical content as signed (cells by image "
        "sha256, each latest decision with reviewer and time, withdrawals, model id and "
        "version); GET .../verification recomputes it."
    )


class Amendment(BaseModel):
    """A decision that changed a signed-off sample, with why."""

    decision_id: int
    image_sha256: str
    old_decision: ReviewDecision | None = Field(description="Null: the cell was undecided.")
    new_decision: ReviewDecision
    reviewer: str
    time: datetime
    reason: str


class SampleWithdrawal(BaseModel):
    client_request_id: str
    time: datetime


class SampleHeadline(BaseModel):
    """The one share the sample is read by: what reviewers confirmed, and what it counts."""

    share: float | None = Field(
        description="Reviewer-confirmed ALL-like among the assessable reviewed cells; null "
        "before a reviewer confirmed any cell ALL-like or normal."
    )
    confirmed_all_like: int
    confirmed_normal: int
    assessable_reviewed: int = Field(description="The share's denominator.")
    not_assessable: int = Field(description="Cells a reviewer marked not assessable.")
    undecided: int
    text: str = Field(description='e.g. "66.7% of 3 assessable reviewed cells; 1 not assessable".')


class SampleReport(BaseModel):
    sample_id: str
    status: SampleStatus = Field(
        "preliminary",
        description="preliminary until signed off; final once signed; amended when a decision "
        "changed it after the latest sign-off (a new sign-off makes it final again).",
    )
    signed_off: SignOffRecord | None = Field(None, description="The latest sign-off.")
    sign_offs: list[SignOffRecord] = Field(default_factory=list, description="Oldest first.")
    amendments: list[Amendment] = Field(default_factory=list, description="Oldest first.")
    headline: SampleHeadline | None = None
    predictions: list[SamplePrediction]
    decisions: list[ReviewRecord] = Field(description="Every decision, oldest first.")
    withdrawals: list[SampleWithdrawal] = Field(
        default_factory=list, description="Uploads the page withdrew, oldest first."
    )
    counts: SampleCounts
    blast_share: BlastShare | None = None
    sample_score: float | None = Field(
        None,
        description="Mean calibrated probability of the assessable cells, for ranking samples "
        "(not a share of cells).",
    )
