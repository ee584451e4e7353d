import json

import numpy as np
import pytest
import torch

from training.train_config import TrainConfig
from training.trainer import train, warmup_cosine

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


def test_early_stopping_counts_epochs_without_gain():
    from training.trainer import EarlyStopping

    stopping = EarlyStopping(patience=2)
    for improved in (True, False):
        stopping.update(improved)
    assert not stopping.should_stop
    stopping.update(False)
    assert stopping.should_stop
    stopping.update(True)
    assert not stopping.should_stop
    never = EarlyStopping(patience=None, epochs_without_gain=99)
    assert not never.should_stop


def test_datasets_are_built_with_the_measured_recipe(cnmc_root):
    from app.core.preprocessing import channel_statistics, prepare_image
    from training.dataset_index import index_dataset, read_image
    from training.trainer import build_data

    config = TrainConfig(data=cnmc_root, out=cnmc_root, img_size=32, val_fold=1)
    cache: dict = {}
    data = build_data(config, index_dataset(cnmc_root), cache)
    unmeasured = config.preprocess_config()
    prepared = [prepare_image(read_image(i.path), unmeasured) for i in data.train_images]
    mean, std = channel_statistics(iter(prepared))
    assert data.recipe.mean == pytest.approx(mean)
    assert data.recipe.std == pytest.approx(std)
    assert data.train_set.config == data.recipe
    assert data.val_set is not None
    assert data.val_set.config == data.recipe
    # Measuring prepared each training image once, into the cache the folds share.
    assert set(cache) == {image.path for image in data.train_images}
    assert data.train_set.augmentation is not None
    assert data.run_config(config, index_dataset(cnmc_root)).preprocessing == data.recipe


def test_config_and_command_are_written_before_the_first_epoch(cnmc_root, tmp_path, monkeypatch):
    from training import trainer
    from training.artifacts import RunDir
    from training.cli import main

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


def _people_weights(images, weights) -> dict[tuple[str, int, str], float]:
    by_person: dict[tuple[str, int, str], float] = {}
    for image, weight in zip(images, weights, strict=True):
        key = (image.subject, image.label, image.population)
        by_person[key] = by_person.get(key, 0.0) + weight
    return by_person


def test_subject_balanced_weights_count_people_not_cells_across_populations(
    cnmc_root, external_people_root
):
    from training.dataset_index import LABEL_HEM, index_training_data
    from training.trainer import subject_balanced_weights

    images = index_training_data(cnmc_root, [external_people_root]).images[1:]  # one person: 2
    weights = subject_balanced_weights(images)
    by_person = _people_weights(images, weights)
    assert sum(weights) == pytest.approx(1.0)
    for label in (0, 1):
        shares = [w for (_, y, _), w in by_person.items() if y == label]
        assert sum(shares) == pytest.approx(0.5)  # each class the same
        assert max(shares) == pytest.approx(min(shares))  # each person the same
    # a person with one cell weighs as much as a person with several
    cells = {s: sum(i.subject == s for i in images) for s, _, _ in by_person}
    assert min(cells.values()) < max(cells.values())
    assert {p for _, _, p in by_person} == {"fold1", "external-folds", "external-prelim"}
    hem = [(s, p) for s, y, p in by_person if y == LABEL_HEM]
    assert len(hem) >= 3


def test_population_weights_scale_people_within_their_class(cnmc_root, external_people_root):
    from training.dataset_index import index_training_data
    from training.trainer import subject_balanced_weights

    images = index_training_data(cnmc_root, [external_people_root]).images
    factors = {"external-folds": 3.0, "external-prelim": 3.0}
    by_person = _people_weights(images, subject_balanced_weights(images, factors))
    for label in (0, 1):
        fold1 = [w for (_, y, p), w in by_person.items() if y == label and p == "fold1"]
        external = [w for (_, y, p), w in by_person.items() if y == label and p != "fold1"]
        assert sum(fold1) + sum(external) == pytest.approx(0.5)
        assert external[0] == pytest.approx(3 * fold1[0])
    left_out = subject_balanced_weights(images, {"external-folds": 0, "external-prelim": 0})
    drawn = {i.population for i, w in zip(images, left_out, strict=True) if w > 0}
    assert drawn == {"fold1"}


def test_weights_that_leave_a_class_empty_or_negative_are_refused(cnmc_root, external_people_root):
    from pydantic import ValidationError

    from training.dataset_index import DatasetError, index_training_data
    from training.train_config import TrainConfig
    from training.trainer import subject_balanced_weights

    images = index_training_data(cnmc_root, [external_people_root]).images
    fold1_hem = [i for i in images if i.population == "fold1" or i.label == 1]
    with pytest.raises(DatasetError, match="no HEM person"):
        subject_balanced_weights(fold1_hem, {"fold1": 0.0})
    with pytest.raises(ValidationError, match="0 or more"):
        TrainConfig(data="d", out="o", population_weights={"external-prelim": -1.0})
