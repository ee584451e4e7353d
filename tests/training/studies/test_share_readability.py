from pathlib import Path

from app.core.blast_share import HeldOutCounts
from training.cli import main
from training.studies.share_readability import readability_for

STORE = Path(__file__).parents[3] / "model_store"


def test_pooled_rates_read_from_some_size_and_more_cells_narrow_them():
    pooled = HeldOutCounts(
        true_positives=8000,
        false_negatives=2000,
        true_negatives=7500,
        false_positives=2500,
        source="t",
    )
    report = readability_for(pooled, "pooled", sizes=(20, 200, 2000), shares=(0.5,))
    widths = [row.interval_width for row in report.rows]
    assert widths == sorted(widths, reverse=True)
    assert report.rows[0].too_wide
    assert report.first_readable(0.5) == 200
    assert report.rows[0].more_cells_needed is not None
    assert report.rows[0].apparent_share == 0.5


def test_rates_that_vary_between_people_never_read_however_many_cells():
    spread = HeldOutCounts(
        true_positives=800,
        false_negatives=200,
        true_negatives=600,
        false_positives=400,
        source="t",
        subject_sensitivities=(0.6, 0.8, 0.95, 1.0),
        subject_specificities=(0.0, 0.3, 0.7, 1.0),
    )
    report = readability_for(spread, "spread", sizes=(50, 5000), shares=(0.3, 0.9))
    assert all(row.too_wide for row in report.rows)
    assert report.first_readable(0.3) is None
    assert all(row.more_cells_needed is None for row in report.rows)


def test_the_command_reads_the_card(capsys, tmp_path):
    out = tmp_path / "readability.json"
    model = STORE / "efficientnet-lite0-linear-128-cell"
    assert main(["share-readability", "--card", str(model), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "efficientnet-lite0-linear-128-cell v1" in printed
    assert "| 5000 | 0.90 |" in printed
    assert out.is_file()
