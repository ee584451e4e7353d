"""Sample reports built in memory, for the renderers' tests (FHIR, HL7 v2, lab results)."""

from datetime import UTC, datetime

from app.core.domain.samples import BlastShare, SampleCounts, SamplePrediction, SampleReport
from app.core.sample_headline import sample_headline
from app.rendering.lab_results import ModelDevice

NOW = datetime(2026, 12, 7, 18, 19, 36, tzinfo=UTC)
DEVICE = ModelDevice(id="m", version="3", name="Model M", card_sha256="c" * 64)


def cell(n: int, model: str = "m") -> SamplePrediction:
    return SamplePrediction(
        time=NOW,
        request_id=f"r{n}",
        image_sha256=f"{n:064x}",
        model_id=model,
        model_version="3",
        probability_all=0.7,
        label="ALL",
        state="suggests_all",
        assessable=True,
    )


def report(share: BlastShare | None, cells: int = 2) -> SampleReport:
    predictions = [cell(n) for n in range(cells)]
    sample = SampleReport(
        sample_id="S-1",
        predictions=predictions,
        decisions=[],
        counts=SampleCounts(
            images=cells, by_state={}, decided=0, by_decision={}, model_suggested_all_like_share=1
        ),
        blast_share=share,
    )
    sample.headline = sample_headline(predictions, [])
    return sample


def share(**fields) -> BlastShare:
    base = {"n_cells": 2, "n_assessable": 2, "n_reviewed": 0, "n_model_called": 2}
    return BlastShare(readable_width=0.3, **{**base, **fields})
