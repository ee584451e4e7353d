from pathlib import Path

import pytest

from training.data.dataset_index import (
    LABEL_ALL,
    LABEL_HEM,
    CellImage,
    DatasetError,
    index_dataset,
    subject_label,
)
from training.data.splits import (
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


def people(strata: dict[tuple[str, str], int], cells: int = 3) -> list[CellImage]:
    """`cells` images for each of n people per (class, population); HEM people are H<n>."""
    images = []
    number = 100
    for (kind, population), count in strata.items():
        for _ in range(count):
            number += 1
            subject = f"H{number}" if kind == "HEM" else str(number)
            images += [
                CellImage(
                    path=Path(f"UID_{subject}_{n}_1.png"),
                    subject=subject,
                    label=subject_label(subject),
                    population=population,
                )
                for n in range(cells + number % 4)
            ]
    return images


COMBINED_STRATA = {  # the 44 people of fold 1 plus C-NMC_external
    ("ALL", "fold1"): 11,
    ("HEM", "fold1"): 3,
    ("ALL", "external-folds"): 12,
    ("HEM", "external-folds"): 7,
    ("ALL", "external-prelim"): 5,
    ("HEM", "external-prelim"): 6,
}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_grouped_folds_over_populations_hold_every_person_out_exactly_once(seed):
    images = people(COMBINED_STRATA)
    splits = subject_grouped_folds(images, 5, seed)
    held_out = [subject for split in splits for subject in {i.subject for i in split.validation}]
    assert sorted(held_out) == sorted({image.subject for image in images})  # once each
    for split in splits:
        validation = {(i.subject, i.label, i.population) for i in split.validation}
        assert not {s for s, _, _ in validation} & {i.subject for i in split.train}
        # every fold: healthy donors, and people of both external parts
        assert any(label == LABEL_HEM for _, label, _ in validation)
        assert {"external-folds", "external-prelim"} <= {p for _, _, p in validation}


def test_grouped_folds_fill_a_fold_the_small_strata_would_leave_without_healthy_donors():
    # Two HEM strata of 2 people each and 3 folds: dealt apart, fold 2 would get no HEM.
    images = people({("ALL", "a"): 3, ("HEM", "a"): 2, ("HEM", "b"): 2, ("ALL", "b"): 3}, cells=2)
    for split in subject_grouped_folds(images, 3, 0):
        assert any(i.label == LABEL_HEM for i in split.validation)


def test_grouped_folds_of_one_population_are_those_of_earlier_runs():
    # Populations are only a stratum when there are several, so the saved configs of fold-1
    # cross-validations rebuild the folds they were trained on (pinned from before the check
    # set's people joined training).
    tagged = [
        CellImage(i.path, i.subject, i.label, i.fold, population="fold1")
        for i in cohort(FOLD1_SIZES)
    ]
    folds = [sorted({i.subject for i in s.validation}) for s in subject_grouped_folds(tagged, 3, 0)]
    assert folds == [
        ["16", "51", "H10"],
        ["23", "34", "44", "46", "H14"],
        ["2", "30", "32", "33", "38", "H22"],
    ]
    ties = people({("ALL", "fold1"): 6, ("HEM", "fold1"): 4}, cells=2)
    folds = [sorted({i.subject for i in s.validation}) for s in subject_grouped_folds(ties, 3, 1)]
    assert folds == [["103", "104", "H107"], ["105", "106", "H110"], ["101", "102", "H108", "H109"]]
