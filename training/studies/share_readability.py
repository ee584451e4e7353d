"""Whether a sample's corrected blast-like share becomes readable at some sample size, with a
card's own counts: the estimator the server runs (`estimate_blast_share`), fed samples of a
given size and apparent share, and the width of the interval it answers.

What limits the width is the card's uncertainty about the patient's own sensitivity and
specificity (how they vary between its unseen people), which more cells of one sample cannot
narrow; this table says from how many cells, if any, the interval gets under the readable width.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from app.core.blast_share import (
    CellCalls,
    HeldOutCounts,
    estimate_blast_share,
    held_out_counts,
)
from app.core.manifest import load_manifest

SAMPLE_SIZES = (20, 50, 100, 200, 500, 1000, 5000)
APPARENT_SHARES = (0.1, 0.3, 0.6, 0.9)


class ReadabilityRow(BaseModel):
    cells: int
    apparent_share: float
    corrected: float | None
    ci_low: float | None
    ci_high: float | None
    interval_width: float | None
    too_wide: bool
    more_cells_needed: int | None


class ShareReadability(BaseModel):
    model: str
    source: str
    rates: str
    sensitivity: float
    specificity: float
    readable_width: float
    rows: list[ReadabilityRow]

    def first_readable(self, share: float) -> int | None:
        """The fewest cells at which a sample of this apparent share reads, if any does."""
        sizes = [r.cells for r in self.rows if r.apparent_share == share and not r.too_wide]
        return min(sizes) if sizes else None


def share_readability(model_dir: Path) -> ShareReadability:
    """The table for a model directory's card."""
    manifest = load_manifest(model_dir)
    counts = held_out_counts(manifest)
    if counts is None:
        raise ValueError(f"{model_dir.name}'s card has no error rates at its served threshold")
    return readability_for(counts, f"{manifest.id} v{manifest.version}")


def readability_for(
    counts: HeldOutCounts,
    model: str,
    sizes: Sequence[int] = SAMPLE_SIZES,
    shares: Sequence[float] = APPARENT_SHARES,
) -> ShareReadability:
    """The estimator's interval for samples of each size and apparent share, all model-called."""
    rows = []
    readable_width = 0.0
    for share in shares:
        for cells in sizes:
            called_all = round(share * cells)
            estimate = estimate_blast_share(CellCalls(cells, cells, called_all, 0, 0), counts)
            readable_width = estimate.readable_width
            rows.append(
                ReadabilityRow(
                    cells=cells,
                    apparent_share=called_all / cells,
                    corrected=estimate.corrected,
                    ci_low=estimate.ci_low,
                    ci_high=estimate.ci_high,
                    interval_width=estimate.interval_width,
                    too_wide=estimate.too_wide,
                    more_cells_needed=estimate.more_cells_needed,
                )
            )
    return ShareReadability(
        model=model,
        source=counts.source,
        rates=counts.rates,
        sensitivity=counts.sensitivity,
        specificity=counts.specificity,
        readable_width=readable_width,
        rows=rows,
    )


def markdown_table(report: ShareReadability) -> str:
    lines = [
        "| cells | apparent share | corrected | 95% interval | width | readable "
        "| more cells needed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.rows:
        interval = (
            f"{row.ci_low:.2f} to {row.ci_high:.2f}"
            if row.ci_low is not None and row.ci_high is not None
            else "—"
        )
        lines.append(
            f"| {row.cells} | {row.apparent_share:.2f} | "
            f"{'—' if row.corrected is None else f'{row.corrected:.2f}'} | {interval} | "
            f"{'—' if row.interval_width is None else f'{row.interval_width:.2f}'} | "
            f"{'no' if row.too_wide else 'yes'} | "
            f"{'—' if row.more_cells_needed is None else row.more_cells_needed} |"
        )
    return "\n".join(lines)
