from pathlib import Path

import numpy as np
import pytest

from training.data.dataset_index import LABEL_ALL, LABEL_HEM, CellImage
from training.data.predictions import Predictions


def predictions(
    subjects: list[str], labels: list[int], logits: list[float], population: str = "fold1"
) -> Predictions:
    images = tuple(
        CellImage(path=Path(f"/data/{s}_{i}.png"), subject=s, label=y, population=population)
        for i, (s, y) in enumerate(zip(subjects, labels, strict=True))
    )
    z = np.asarray(logits)
    return Predictions(images=images, logits=z, probabilities=1 / (1 + np.exp(-z)))


def test_csv_round_trip_keeps_images_and_six_decimals(tmp_path):
    written = predictions(["16", "H10", "16"], [LABEL_ALL, LABEL_HEM, LABEL_ALL], [1.25, -0.5, 3.0])
    path = tmp_path / "val_predictions.csv"
    written.write_csv(path)
    assert path.read_text().splitlines()[0] == "path,subject,label,population,logit,probability_all"
    read = Predictions.read_csv(path)
    assert read.images == written.images
    assert read.subjects == ["16", "H10", "16"]
    assert read.labels.tolist() == [1, 0, 1]
    assert read.logits == pytest.approx(written.logits, abs=1e-6)
    assert read.probabilities == pytest.approx(written.probabilities, abs=1e-6)


def test_csv_without_population_column_reads_empty_population(tmp_path):
    path = tmp_path / "oof_predictions.csv"
    path.write_text("path,subject,label,logit,probability_all\n/data/a.png,16,1,0.5,0.622459\n")
    read = Predictions.read_csv(path)
    assert read.images[0].population == ""
    assert read.subjects == ["16"]


def test_concatenate_pools_folds_in_order():
    first = predictions(["16", "H10"], [LABEL_ALL, LABEL_HEM], [0.5, -1.0])
    second = predictions(["23"], [LABEL_ALL], [2.0])
    pooled = Predictions.concatenate([first, second])
    assert pooled.subjects == ["16", "H10", "23"]
    assert pooled.logits.tolist() == [0.5, -1.0, 2.0]
    assert pooled.probabilities.tolist() == [*first.probabilities, *second.probabilities]
