"""What the model card says a lab should expect: its rates on patients it never saw, and where
the lab's own rates lie against them.

The card's evaluation on people outside its training data (its protocol starts "unseen
subjects") holds each rate over all those people with a 95% interval (`sensitivity_all`,
`sensitivity_all_low`, ...), at a threshold: they are the reference only where that threshold
is the one the model is served at. Nothing here is hard-coded: a card without such an
evaluation has no reference, and the figures say so.
"""

from __future__ import annotations

import math

from app.core.domain.performance import Drift, Rate, Reference, ReferenceRate, Side
from app.core.manifest import UNSEEN_SUBJECTS_PROTOCOL, ModelManifest

RATES = ("sensitivity", "specificity", "balanced_accuracy")
PART = "all"


def card_reference(manifest: ModelManifest) -> tuple[Reference | None, str]:
    """The card's unseen-patient rates at the served threshold, or None and why not."""
    unseen = [e for e in manifest.evaluations if e.protocol.startswith(UNSEEN_SUBJECTS_PROTOCOL)]
    if not unseen:
        return None, (
            f"the card of {manifest.id} v{manifest.version} records no evaluation on patients "
            "it never saw: nothing to compare the lab's rates with"
        )
    evaluation = unseen[-1]
    threshold = evaluation.metrics.get("threshold")
    if not isinstance(threshold, int | float) or not math.isclose(
        float(threshold), manifest.threshold.value, abs_tol=1e-9
    ):
        return None, (
            f"the card's rates on unseen patients were measured at another threshold than the "
            f"served {manifest.threshold.value:.4f}: they do not describe the served calls"
        )
    try:
        rates = {
            name: ReferenceRate(
                value=evaluation.number(f"{name}_{PART}"),
                low=evaluation.number(f"{name}_{PART}_low"),
                high=evaluation.number(f"{name}_{PART}_high"),
            )
            for name in RATES
        }
    except (KeyError, TypeError):
        return None, "the card's evaluation on unseen patients holds no rates with intervals"
    metrics = evaluation.metrics
    people = [metrics.get(f"subjects_{c}_{PART}") for c in ("all", "hem")]
    return (
        Reference(
            **rates,
            cells=int(evaluation.number(f"cells_{PART}")) if f"cells_{PART}" in metrics else None,
            people=int(sum(people)) if all(isinstance(p, int) for p in people) else None,  # type: ignore[arg-type]
            source=f"model card {manifest.id} v{manifest.version}: {evaluation.protocol}",
        ),
        "",
    )


def side_of(local: Rate, card: ReferenceRate) -> Side | None:
    """Where the local rate lies against the card's interval."""
    if local.value is None:
        return None
    if local.value < card.low:
        return "below"
    if local.value > card.high:
        return "above"
    return "within"


def drift(figures: dict[str, Rate], reference: Reference | None) -> Drift:
    """Each rate against the card; an alert where a local interval lies wholly below the
    card's, given an interval from resampling samples (a Wilson interval on a few people's
    cells is too narrow to raise one)."""
    if reference is None:
        return Drift(
            sensitivity=None,
            specificity=None,
            balanced_accuracy=None,
            alert=False,
            alert_rates=[],
            note="no reference on the card",
        )
    sides = {name: side_of(figures[name], getattr(reference, name)) for name in RATES}
    below = [
        name
        for name in RATES
        if figures[name].high is not None and figures[name].high < getattr(reference, name).low
    ]
    alerting = [name for name in below if figures[name].method == "sample_resampling"]
    note = ""
    if len(alerting) < len(below):
        note = (
            "a local interval lies below the card's, but from fewer than 5 samples: no alert "
            "until more samples are reviewed"
        )
    return Drift(**sides, alert=bool(alerting), alert_rates=alerting, note=note)
