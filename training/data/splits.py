"""Train/validation splits by subject, never by image.

Cells of one patient look alike (stain, scanner, the patient's own morphology); an
image-level split leaks that likeness into validation and inflates every metric.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from training.data.dataset_index import LABEL_ALL, LABEL_HEM, CellImage, DatasetError


@dataclass(frozen=True)
class Split:
    name: str
    train: tuple[CellImage, ...]
    validation: tuple[CellImage, ...]

    def __post_init__(self) -> None:
        shared = {i.subject for i in self.train} & {i.subject for i in self.validation}
        if shared:
            raise DatasetError(f"split {self.name}: subjects on both sides: {sorted(shared)}")


def subject_grouped_folds(images: Sequence[CellImage], folds: int, seed: int = 0) -> list[Split]:
    """k folds of whole subjects, each validation fold with at least one HEM and one ALL subject.

    Subjects are dealt per stratum (class, and population when there are several), largest
    first, to the fold with the fewest images of that stratum, so folds stay close in size and
    every stratum with at least k people reaches every fold; the seed breaks ties between
    subjects of equal size. With one population this is the plain per-class deal, so folds of
    earlier runs are rebuilt unchanged.
    """
    if folds < 2:
        raise DatasetError("cross-validation needs at least 2 folds")
    per_subject = Counter(image.subject for image in images)
    label_of = {image.subject: image.label for image in images}
    population_of = {image.subject: image.population for image in images}
    several_populations = len(set(population_of.values())) > 1
    for label in (LABEL_HEM, LABEL_ALL):
        found = sum(1 for s in per_subject if label_of[s] == label)
        if found < folds:
            kind = "HEM" if label == LABEL_HEM else "ALL"
            raise DatasetError(
                f"{folds} folds need at least {folds} {kind} subjects; found {found}"
            )
    strata = sorted({(label_of[s], population_of[s]) for s in per_subject}, key=_stratum_order)
    assignment: dict[str, int] = {}
    class_subjects = {label: [0] * folds for label in (LABEL_HEM, LABEL_ALL)}
    rng = random.Random(seed)
    for label, population in strata:
        subjects = [
            s for s in per_subject if (label_of[s], population_of[s]) == (label, population)
        ]
        rng.shuffle(subjects)
        subjects.sort(key=lambda s: per_subject[s], reverse=True)
        load = [0] * folds
        spread = class_subjects[label]
        for subject in subjects:
            # With several populations, ties in load go to the fold with fewest people of this
            # class, so a small stratum fills the folds the others left without that class.
            target = min(
                range(folds), key=lambda k: (load[k], spread[k] if several_populations else 0, k)
            )
            assignment[subject] = target
            load[target] += per_subject[subject]
            spread[target] += 1
    for label, per_fold in class_subjects.items():
        if 0 in per_fold:
            kind = "HEM" if label == LABEL_HEM else "ALL"
            raise DatasetError(f"a fold has no {kind} subject; use fewer folds")
    return [
        Split(
            name=f"fold{k}",
            train=tuple(i for i in images if assignment[i.subject] != k),
            validation=tuple(i for i in images if assignment[i.subject] == k),
        )
        for k in range(folds)
    ]


def _stratum_order(stratum: tuple[int, str]) -> tuple[int, str]:
    """HEM before ALL (as the plain deal did), then by population."""
    label, population = stratum
    return (0 if label == LABEL_HEM else 1, population)


def official_fold_split(images: Sequence[CellImage], validation_fold: str) -> Split:
    """Hold out one fold of the official release (e.g. fold_2)."""
    available = sorted({str(i.fold) for i in images})
    if validation_fold not in available:
        raise DatasetError(f"no fold {validation_fold!r}; the data has {available}")
    return Split(
        name=validation_fold,
        train=tuple(i for i in images if i.fold != validation_fold),
        validation=tuple(i for i in images if i.fold == validation_fold),
    )


def held_out_subjects_split(images: Sequence[CellImage], subjects: Sequence[str]) -> Split:
    wanted = {s.upper() for s in subjects}
    missing = wanted - {i.subject for i in images}
    if missing:
        raise DatasetError(f"validation subjects not in the data: {sorted(missing)}")
    return Split(
        name="subjects-" + "-".join(sorted(wanted)),
        train=tuple(i for i in images if i.subject not in wanted),
        validation=tuple(i for i in images if i.subject in wanted),
    )


def subsample_per_subject(images: Sequence[CellImage], limit: int | None) -> list[CellImage]:
    """The first `limit` images of each subject (all with None), for smoke runs."""
    if limit is None:
        return list(images)
    taken: dict[str, int] = defaultdict(int)
    kept = []
    for image in images:
        if taken[image.subject] < limit:
            kept.append(image)
            taken[image.subject] += 1
    return kept
