import json

import pytest
import torch

from training.fit.train_config import TrainConfig
from training.fit.trainer import train

pytestmark = pytest.mark.slow


def test_last_checkpoint_selection_keeps_the_final_epoch(cnmc_root, tmp_path):
    config = TrainConfig(
        data=cnmc_root,
        out=tmp_path / "run",
        arch="convnext_atto",
        img_size=32,
        epochs=2,
        batch_size=6,
        val_fold=1,
        checkpoint="last",
    )
    result = train(config)
    best = torch.load(tmp_path / "run/best.pt", weights_only=True)
    assert best["epoch"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert result.best_metrics is not None
    assert result.best_metrics.as_dict() == rows[-1]["validation"]


def test_training_is_reproducible_from_the_seed(cnmc_root, tmp_path):
    def final_loss(name: str) -> float:
        config = TrainConfig(
            data=cnmc_root,
            out=tmp_path / name,
            arch="convnext_atto",
            img_size=32,
            epochs=1,
            batch_size=6,
            seed=3,
        )
        train(config)
        return json.loads((tmp_path / name / "metrics.jsonl").read_text())["train_loss"]

    assert final_loss("a") == final_loss("b")


def test_device_choice():
    from training.fit.trainer import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


def test_config_and_command_are_written_before_the_first_epoch(cnmc_root, tmp_path, monkeypatch):
    from training.cli import main
    from training.fit import trainer
    from training.fit.artifacts import RunDir

    def stop(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(trainer, "train_one_epoch", stop)
    out = tmp_path / "run"
    arguments = ["train", "--data", str(cnmc_root), "--out", str(out), "--img-size", "32"]
    with pytest.raises(RuntimeError, match="stopped"):
        main(arguments)
    run = RunDir(out)
    assert run.read_command().startswith("python -m training train --data")
    assert run.read_config().train == TrainConfig(data=cnmc_root, out=out, img_size=32)
    assert run.metrics_file.read_text() == ""
