import csv
import json
from pathlib import Path

import numpy as np
import pytest

from training.cli import main
from training.data.dataset_index import subject_label
from training.studies.sample_simulation import (
    counts_without,
    read_out_of_fold,
    simulate_held_out,
    subject_level_roc_auc,
)

STORE = Path(__file__).parents[3] / "model_store"


def write_out_of_fold(cv_dir: Path, *, cells_per_subject: int = 60, seed: int = 0) -> Path:
    """A cv directory whose held-out probabilities separate the classes well but not fully."""
    rng = np.random.default_rng(seed)
    cv_dir.mkdir(parents=True, exist_ok=True)
    with (cv_dir / "oof_predictions.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "subject", "label", "logit", "probability_all"])
        for subject, label in [("1", 1), ("2", 1), ("3", 1), ("4", 1), ("H1", 0), ("H2", 0)]:
            probabilities = (
                rng.beta(6, 2, cells_per_subject) if label else rng.beta(2, 6, cells_per_subject)
            )
            for index, probability in enumerate(probabilities):
                writer.writerow([f"{subject}_{index}.png", subject, label, 0.0, probability])
    return cv_dir


def test_the_counts_leave_the_samples_subjects_out(tmp_path):
    cells = read_out_of_fold(write_out_of_fold(tmp_path / "cv"))
    threshold, counts = counts_without(cells, ["1", "H1"])
    assert counts.true_positives + counts.false_negatives == 3 * 60
    assert counts.true_negatives + counts.false_positives == 60
    assert 0.2 < threshold < 0.8
    assert "1, H1" in counts.source


def test_the_corrected_share_beats_the_uncorrected_one_at_the_edges(tmp_path):
    cells = read_out_of_fold(write_out_of_fold(tmp_path / "cv"))
    report = simulate_held_out(cells, sizes=(40,), shares=(0.0, 1.0), repeats=15, seed=1)
    for row in report["rows"]:
        assert row["samples"] == 15
        assert row["mean_abs_error_corrected"] < row["mean_abs_error_uncorrected"]
        assert 0.0 <= row["coverage"] <= 1.0
    assert report["subjects"] == {"all": ["1", "2", "3", "4"], "hem": ["H1", "H2"]}


def test_subject_level_auc_scores_each_subject_once(tmp_path):
    cells = read_out_of_fold(write_out_of_fold(tmp_path / "cv"))
    summary = subject_level_roc_auc(cells)
    assert summary["subjects_all"] == 4
    assert summary["subjects_hem"] == 2
    assert summary["subject_level_roc_auc"] == 1.0  # every ALL subject's mean is higher


def test_the_command_writes_the_table_as_json(tmp_path, capsys):
    cv_dir = write_out_of_fold(tmp_path / "cv")
    out = tmp_path / "simulation.json"
    code = main(["sample-simulation", "--cv", str(cv_dir), "--repeats", "2", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {(row["cells"], row["true_share"]) for row in report["rows"]} == {
        (cells, share) for cells in (10, 20, 50, 100, 200) for share in (0, 0.05, 0.2, 0.5, 1)
    }
    assert "| 200 | 1.00 |" in capsys.readouterr().out


@pytest.mark.parametrize("model_id", ["convnext-atto-128-cell"])
def test_the_card_mode_is_labelled_synthetic(tmp_path, capsys, model_id):
    out = tmp_path / "simulation.json"
    code = main(
        ["sample-simulation", "--card", str(STORE / model_id), "--repeats", "1", "--out", str(out)]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["protocol"].startswith("SYNTHETIC")
    assert report["card"].startswith(model_id)


def test_a_cv_without_predictions_is_an_error(tmp_path, capsys):
    assert main(["sample-simulation", "--cv", str(tmp_path)]) == 2
    assert "oof_predictions.csv" in capsys.readouterr().err


def test_unseen_subjects_are_each_one_sample_scored_as_served(cnmc_root, tmp_path, capsys):
    out = tmp_path / "unseen.json"
    model_dir = STORE / "convnext-atto-128-cell"
    arguments = ["--card", str(model_dir), "--unseen-data", str(cnmc_root), "--out", str(out)]
    assert main(["sample-simulation", *arguments]) == 0
    report = json.loads(out.read_text())
    assert (report["subjects_all"], report["subjects_hem"]) == (3, 3)
    assert sum(row["cells"] for row in report["subjects"]) == 18
    for row in report["subjects"]:
        assert row["true_share"] == float(subject_label(row["subject"]))
        assert 0.0 <= row["ci_low"] <= row["corrected"] <= row["ci_high"] <= 1.0
        assert row["covered"] == (row["ci_low"] <= row["true_share"] <= row["ci_high"])
    assert 0.0 <= report["subject_level_roc_auc"] <= 1.0
    assert "subject-level ROC AUC" in capsys.readouterr().out
