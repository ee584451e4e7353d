"""One image's answer, as the prediction path makes it and every layer passes it on: the API
answers it, the records keep it, the command line and the cluster write it into tables."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.core.answer_states import AnswerState
from app.core.quality_checks import QualityWarning


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
