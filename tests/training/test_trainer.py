import json

import numpy as np
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


def test_subject_balanced_weights_give_each_class_and_subject_an_equal_share(cnmc_root):
    from training.dataset_index import LABEL_HEM, index_dataset, subject_label
    from training.trainer import subject_balanced_weights

    images = index_dataset(cnmc_root).images[:-2]  # uneven subjects: H22 keeps one cell
    weights = np.asarray(subject_balanced_weights(images))
    by_subject: dict[str, float] = {}
    for image, weight in zip(images, weights, strict=True):
        by_subject[image.subject] = by_subject.get(image.subject, 0.0) + weight
    assert weights.sum() == pytest.approx(1.0)
    assert sum(w for s, w in by_subject.items() if subject_label(s) == LABEL_HEM) == pytest.approx(
        0.5
    )
    assert set(np.round(list(by_subject.values()), 12)) == {round(0.5 / 3, 12)}


def test_device_choice():
    from training.trainer import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


def test_distillation_pulls_towards_the_teacher_and_needs_its_recipe(cnmc_root, tmp_path):
    from training.trainer import distillation_loss

    logits = torch.tensor([0.0, 2.0])
    teacher = torch.nn.Module()
    teacher.forward = lambda batch: torch.tensor([3.0, -3.0])  # type: ignore[method-assign]
    label_loss = torch.tensor(0.25)
    only_labels = distillation_loss(logits, label_loss, [teacher], torch.zeros(2), 0.0)
    assert only_labels.item() == pytest.approx(0.25)
    only_teacher = distillation_loss(logits, label_loss, [teacher], torch.zeros(2), 1.0)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.sigmoid(torch.tensor([3.0, -3.0]))
    )
    assert only_teacher.item() == pytest.approx(expected.item())

    base = {"data": cnmc_root, "arch": "convnext_atto", "img_size": 32, "epochs": 1}
    train(TrainConfig(out=tmp_path / "teacher", batch_size=6, **base))
    student = train(
        TrainConfig(
            out=tmp_path / "student",
            batch_size=6,
            teacher=tmp_path / "teacher",
            distillation_weight=0.7,
            scale_jitter=0.25,
            intensity_jitter=0.3,
            stain_jitter=0.05,
            subject_balanced=True,
            **base,
        )
    )
    assert (student.run_dir / "last.pt").is_file()
    with pytest.raises(ValueError, match="another recipe"):
        train(
            TrainConfig(
                out=tmp_path / "mismatch",
                batch_size=6,
                teacher=tmp_path / "teacher",
                crop="bbox",
                **base,
            )
        )
