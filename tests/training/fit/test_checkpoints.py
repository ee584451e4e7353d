from pathlib import Path

import numpy as np
import pytest
import torch

from training.data.dataset_index import CellImage
from training.data.predictions import Predictions
from training.fit.artifacts import RunConfig, RunDir
from training.fit.checkpoints import CheckpointKeeper, Validation, load_trained_model
from training.fit.models import create_classifier
from training.fit.train_config import TrainConfig
from training.metrics.classification_metrics import binary_metrics

LABELS = [0, 0, 1, 1]


def validation(probabilities: list[float]) -> Validation:
    images = tuple(CellImage(Path(f"{i}.png"), f"s{i}", y) for i, y in enumerate(LABELS))
    p = np.asarray(probabilities)
    predictions = Predictions(images, np.log(p / (1 - p)), p)
    return Validation(predictions, binary_metrics(LABELS, p, 0.5))


GOOD = [0.1, 0.2, 0.8, 0.9]  # ROC AUC 1
POOR = [0.6, 0.2, 0.3, 0.9]  # ROC AUC 0.75, balanced accuracy 0.5
EQUAL = [0.1, 0.3, 0.7, 0.9]  # ROC AUC 1 again: no gain


class Weight(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([value]))


def kept_epoch(run: RunDir, name: str) -> int:
    return torch.load(getattr(run, name), weights_only=True)["epoch"]


def test_keeper_keeps_the_best_epoch_by_the_monitored_figure(tmp_path):
    run = RunDir(tmp_path)
    keeper = CheckpointKeeper(run, "roc_auc")
    assert keeper.update(Weight(1.0), "full", 1, validation(POOR))
    assert keeper.update(Weight(2.0), "full", 2, validation(GOOD))
    assert not keeper.update(Weight(3.0), "full", 3, validation(EQUAL))
    assert not keeper.update(Weight(4.0), "full", 4, validation(POOR))
    assert kept_epoch(run, "best_checkpoint") == 2
    assert kept_epoch(run, "last_checkpoint") == 4
    best = torch.load(run.best_checkpoint, weights_only=True)["model"]["weight"]
    assert best.item() == 2.0
    keeper.finish(Weight(4.0))
    kept = keeper.kept
    assert kept is not None
    assert kept.metrics.roc_auc == 1.0
    assert run.read_validation_predictions().probabilities == pytest.approx(GOOD, abs=1e-6)


def test_last_policy_keeps_every_epoch_but_reports_gains(tmp_path):
    run = RunDir(tmp_path)
    keeper = CheckpointKeeper(run, "balanced_accuracy", "last")
    assert keeper.update(Weight(1.0), "full", 1, validation(GOOD))
    assert not keeper.update(Weight(2.0), "full", 2, validation(POOR))
    assert kept_epoch(run, "best_checkpoint") == 2
    assert keeper.kept is not None
    assert keeper.kept.metrics.balanced_accuracy == 0.5


def test_without_validation_every_epoch_is_kept_and_counts_as_a_gain(tmp_path):
    run = RunDir(tmp_path)
    keeper = CheckpointKeeper(run, "roc_auc")
    assert keeper.update(Weight(1.0), "head", 1, None)
    assert keeper.update(Weight(2.0), "full", 1, None)
    keeper.finish(Weight(2.0))
    assert torch.load(run.best_checkpoint, weights_only=True)["phase"] == "full"
    assert not run.has_validation_predictions()


def test_a_run_without_epochs_keeps_its_initial_model(tmp_path):
    run = RunDir(tmp_path)
    CheckpointKeeper(run, "roc_auc").finish(Weight(5.0))
    assert torch.load(run.best_checkpoint, weights_only=True)["epoch"] == 0


def test_only_the_writing_process_writes(tmp_path):
    keeper = CheckpointKeeper(RunDir(tmp_path), "roc_auc", write=False)
    keeper.update(Weight(1.0), "full", 1, validation(GOOD))
    keeper.finish(Weight(1.0))
    assert keeper.kept is not None
    assert list(tmp_path.iterdir()) == []


def test_load_trained_model_rebuilds_the_runs_architecture(tmp_path):
    config = TrainConfig(data=tmp_path, out=tmp_path, arch="convnext_atto", head="paper")
    run = RunDir(tmp_path)
    run.write_config(
        RunConfig(
            train=config,
            preprocessing=config.preprocess_config(),
            split=None,
            train_subjects={},
            validation_subjects={},
        )
    )
    torch.manual_seed(0)
    model = create_classifier("convnext_atto", "paper")
    CheckpointKeeper(run, "roc_auc").update(model, "full", 1, None)
    loaded = load_trained_model(tmp_path)
    assert not loaded.training
    images = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model.eval()(images))
