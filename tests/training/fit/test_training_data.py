import numpy as np
import pytest

from training.fit.train_config import TrainConfig


def test_subject_balanced_weights_give_each_class_and_subject_an_equal_share(cnmc_root):
    from training.data.dataset_index import LABEL_HEM, index_dataset, subject_label
    from training.fit.training_data import subject_balanced_weights

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


def test_datasets_are_built_with_the_measured_recipe(cnmc_root):
    from app.core.recipe import channel_statistics, prepare_image
    from training.data.dataset_index import index_dataset, read_image
    from training.fit.training_data import build_data

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


def test_subject_balanced_weights_count_people_not_cells_across_populations(
    cnmc_root, external_people_root
):
    from training.data.dataset_index import LABEL_HEM, index_training_data
    from training.fit.training_data import subject_balanced_weights

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
    from training.data.dataset_index import index_training_data
    from training.fit.training_data import subject_balanced_weights

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

    from training.data.dataset_index import DatasetError, index_training_data
    from training.fit.train_config import TrainConfig
    from training.fit.training_data import subject_balanced_weights

    images = index_training_data(cnmc_root, [external_people_root]).images
    fold1_hem = [i for i in images if i.population == "fold1" or i.label == 1]
    with pytest.raises(DatasetError, match="no HEM person"):
        subject_balanced_weights(fold1_hem, {"fold1": 0.0})
    with pytest.raises(ValidationError, match="0 or more"):
        TrainConfig(data="d", out="o", population_weights={"external-prelim": -1.0})


def _people_weights(images, weights) -> dict[tuple[str, int, str], float]:
    by_person: dict[tuple[str, int, str], float] = {}
    for image, weight in zip(images, weights, strict=True):
        key = (image.subject, image.label, image.population)
        by_person[key] = by_person.get(key, 0.0) + weight
    return by_person
