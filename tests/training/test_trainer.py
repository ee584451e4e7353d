import json

import pytest
import torch

from training.train_config import TrainConfig
from training.trainer import subsample_per_subject, train, warmup_cosine

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
    assert result.best_metrics == rows[-1]["validation"]


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


def test_subsample_per_subject(cnmc_root):
    from training.dataset_index import index_dataset

    images = subsample_per_subject(index_dataset(cnmc_root).images, 2)
    assert len(images) == 12


def test_warmup_then_cosine_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=2, total_steps=6)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.5)
    assert rates[1] == pytest.approx(1.0)
    assert rates[2] == pytest.approx(1.0)
    assert rates[2] > rates[3] > rates[4] > rates[5] > 0
