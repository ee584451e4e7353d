"""A sample's answer: its cells, counts, shares, withdrawals and where it is in its life cycle
(preliminary, signed off, amended). The records build it, the core's statistics read it, the
API answers it and the FHIR report renders it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.answer_states import AnswerState
from app.core.domain.reviews import DURABLE_HELP, ReviewDecision, ReviewerSource, ReviewRecord
from app.core.identities import IdentitySource


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
    uploader: str = Field(
        "",
        description="Who uploaded it: the reviewer's or signed-in user's name; empty for "
        "the shared key, an anonymous client and uploads recorded before owners were kept.",
    )
    uploader_source: IdentitySource = Field(
        "unrecorded",
        description="reviewer_key, sso_header, shared_key, anonymous, or unrecorded (before "
        "0.4). Only that identity can withdraw the upload.",
    )


class SampleSummary(BaseModel):
    sample_id: str
    cells: int = Field(description="Images of the sample, each counted once.")
    reviewed: int = Field(description="Cells with at least one reviewer's decision.")
    last_change: datetime = Field(description="When its latest record was made (ISO 8601, UTC).")


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
    """An upload its owner took back out of the sample (its cells leave it, the audit keeps
    them)."""

    client_request_id: str
    time: datetime
    uploader: str = Field("", description="Who withdrew it: the upload's owner (see uploader).")
    uploader_source: IdentitySource = "unrecorded"


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
    durable: bool = Field(True, description=DURABLE_HELP)
