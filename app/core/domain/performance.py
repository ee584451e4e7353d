"""How the served model did on the lab's own reviewed cells, against its card's rates on
unseen patients (GET /api/v1/performance). app/core/local_performance.py computes them, the
records read the cells, the pages and metrics show them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.domain.predictions import ModelRef

IntervalMethod = Literal["sample_resampling", "wilson_cells"]


Side = Literal["within", "below", "above"]


class Confusion(BaseModel):
    """Reviewed cells by the reviewer's latest decision (truth) and the model's call at the
    threshold it was served at; ALL is positive."""

    tp: int = Field(description="Decided ALL, called ALL-like.")
    fp: int = Field(description="Decided normal (HEM), called ALL-like.")
    tn: int = Field(description="Decided normal, called normal.")
    fn: int = Field(description="Decided ALL, called normal.")


class LeftOut(BaseModel):
    """Cells (and scorings) not in the confusion counts, and why."""

    decided_not_assessable: int = Field(description="Cells whose latest decision is so.")
    not_assessable_answers: int = Field(description="Cells the model answered not assessable.")
    withdrawn: int = Field(description="Cells whose every scoring a page withdrew.")
    repeats: int = Field(description="Scorings of an image its sample already held.")
    unreviewed: int = Field(description="Assessable cells with no decision yet.")
    other_versions: int = Field(description="Cells scored by another version of the model.")


class Rate(BaseModel):
    """A rate with its 95% interval."""

    value: float | None = Field(description="Null without cells of the class it is about.")
    low: float | None
    high: float | None
    cells: int = Field(description="Reviewed cells it is computed on (its denominator).")
    samples: int = Field(description="Samples holding such cells.")
    method: IntervalMethod | None = Field(
        description="sample_resampling: percentile interval over resamples of whole samples "
        "(a sample stands for a person); wilson_cells: fewer than 5 samples hold its cells, a "
        "Wilson interval on cells, which takes cells as independent and is too narrow when "
        "people differ."
    )
    more_samples_for_0_05: int | None = Field(
        description="Roughly how many more reviewed samples like these would narrow the "
        "interval to ±0.05 (0: it already is; null: no cells to judge from)."
    )


class Agreement(BaseModel):
    """How often the reviewers confirmed the model's suggestion; indeterminate answers (near
    the threshold, no suggestion) are counted apart."""

    suggestions: int = Field(description="Reviewed cells that came with a suggestion.")
    confirmed: int
    overruled: int
    share_confirmed: float | None
    indeterminate: int = Field(description="Reviewed cells answered indeterminate.")
    indeterminate_decided_all: int
    indeterminate_decided_normal: int


class ReferenceRate(BaseModel):
    value: float
    low: float
    high: float


class Reference(BaseModel):
    """The card's rates on patients it never saw (people outside its training data or its
    batch), at the served threshold, with their 95% intervals."""

    sensitivity: ReferenceRate
    specificity: ReferenceRate
    balanced_accuracy: ReferenceRate
    cells: int | None
    people: int | None
    source: str = Field(description="The card and the evaluation they come from.")


class Drift(BaseModel):
    """Where each local rate lies against the card's interval; `alert` when a local interval
    lies wholly below the card's (only with intervals from 5 or more samples)."""

    sensitivity: Side | None
    specificity: Side | None
    balanced_accuracy: Side | None
    alert: bool
    alert_rates: list[str] = Field(description="The rates whose interval lies below the card's.")
    note: str = ""


class Figures(BaseModel):
    """The figures of one selection of cells (all of them, or one period's)."""

    cells: int = Field(description="Cells in the confusion counts.")
    samples: int = Field(description="Samples with at least one such cell.")
    reviewers: int = Field(description="Reviewers whose latest decisions those cells carry.")
    confusion: Confusion
    left_out: LeftOut
    sensitivity: Rate
    specificity: Rate
    balanced_accuracy: Rate
    interval_note: str
    agreement: Agreement
    drift: Drift


class PeriodFigures(Figures):
    period: str = Field(description="The first day of the week (Monday) or month, in UTC.")


class AdaptationReadiness(BaseModel):
    """Whether the lab has reviewed enough for `training adapt` to measure a site model."""

    ready: bool
    samples: int = Field(description="Reviewed samples (people) adapt would use.")
    samples_with_all: int
    samples_with_normal: int
    cells: int = Field(description="Reviewed cells adapt would use (those whose images it finds).")
    minimum_samples: int
    minimum_samples_per_class: int
    command: str | None = Field(None, description="The command that would adapt the model.")


class LocalPerformance(Figures):
    """How the served model did on the lab's reviewed cells; a research aid."""

    model: ModelRef
    since: datetime | None
    until: datetime | None
    period: Literal["week", "month"]
    level: float = 0.95
    resamples: int
    reference: Reference | None
    reference_note: str = ""
    by_period: list[PeriodFigures]
    adaptation: AdaptationReadiness
