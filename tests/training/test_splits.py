from pathlib import Path

import pytest

from training.dataset_index import (
    LABEL_ALL,
    LABEL_HEM,
    CellImage,
    DatasetError,
    index_dataset,
    subject_label,
)
from training.splits import (
    Split,
    held_out_subjects_split,
    official_fold_split,
    subject_grouped_folds,
    subsample_per_subject,
)


def cohort(sizes: dict[str, int], fold_of: dict[str, str] | None = None) -> list[CellImage]:
    return [
        CellImage(
            path=Path(f"UID_{subject}_{n}_1.png"),
            subject=subject,
            label=subject_label(subject),
            fold=(fold_of or {}).get(subject),
        )
        for subject, count in sizes.items()
        for n in range(count)
    ]


FOLD1_SIZES = {  # fold 1 of C-NMC, images per subject
    "2": 84,
    "16": 53,
    "23": 97,
    "30": 201,
    "32": 212,
    "33": 181,
    "34": 352,
    "38": 145,
    "44": 146,
    "46": 190,
    "51": 757,
    "H10": 400,
    "H14": 385,
    "H22": 373,
}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_folds_hold_whole_subjects_of_both_classes(seed):
    images = cohort(FOLD1_SIZES)
    folds = subject_grouped_folds(images, 3, seed)
    validation_subjects = [{i.subject for i in split.validation} for split in folds]
    for split, subjects in zip(folds, validation_subjects, strict=True):
        assert not subjects & {i.subject for i in split.train}
        assert {LABEL_ALL, LABEL_HEM} <= {i.label for i in split.validation}
        assert len(split.train) + len(split.validation) == len(images)
    # Every subject is validated exactly once.
    assert sorted(s for group in validation_subjects for s in group) == sorted(FOLD1_SIZES)


def test_folds_are_balanced_in_size():
    folds = subject_grouped_folds(cohort(FOLD1_SIZES), 3)
    sizes = [len(split.validation) for split in folds]
    assert max(sizes) - min(sizes) < 0.15 * sum(sizes)


def test_folds_are_reproducible_from_the_seed():
    images = cohort(FOLD1_SIZES)
    first = [{i.subject for i in s.validation} for s in subject_grouped_folds(images, 3, 5)]
    again = [{i.subject for i in s.validation} for s in subject_grouped_folds(images, 3, 5)]
    assert first == again


def test_more_folds_than_hem_subjects_is_refused():
    with pytest.raises(DatasetError, match="at least 4 HEM subjects"):
        subject_grouped_folds(cohort(FOLD1_SIZES), 4)


def test_a_split_sharing_a_subject_is_refused():
    images = cohort({"1": 2, "H1": 2})
    with pytest.raises(DatasetError, match="subjects on both sides"):
        Split("bad", train=tuple(images[:1]), validation=tuple(images[1:]))


def test_official_fold_split():
    images = cohort({"1": 2, "2": 2, "H1": 2}, {"1": "fold_0", "2": "fold_2", "H1": "fold_2"})
    split = official_fold_split(images, "fold_2")
    assert {i.subject for i in split.validation} == {"2", "H1"}
    with pytest.raises(DatasetError, match="no fold 'fold_9'"):
        official_fold_split(images, "fold_9")


def test_held_out_subjects_split_accepts_lower_case():
    split = held_out_subjects_split(cohort({"1": 2, "H1": 2, "H2": 1}), ["h1", "1"])
    assert {i.subject for i in split.train} == {"H2"}
    with pytest.raises(DatasetError, match="H9"):
        held_out_subjects_split(cohort({"1": 1}), ["H9"])


def test_subsample_per_subject(cnmc_root):
    images = subsample_per_subject(index_dataset(cnmc_root).images, 2)
    assert len(images) == 12
