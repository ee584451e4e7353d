"""Train/validation splits by subject, never by image.

Cells of one patient look alike (stain, scanner, the patient's own morphology); an
image-level split leaks that likeness into validation and inflates every metric.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from training.dataset_index import LABEL_ALL, LABEL_HEM, CellImage, DatasetError
from training.train_config import TrainConfig


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

    Subjects are dealt largest first to the fold with the fewest images of that class, so
    folds stay close in size; the seed breaks ties between subjects of equal size.
    """
    if folds < 2:
        raise DatasetError("cross-validation needs at least 2 folds")
    per_subject = Counter(image.subject for image in images)
    label_of = {image.subject: image.label for image in images}
    assignment: dict[str, int] = {}
    rng = random.Random(seed)
    for label in (LABEL_HEM, LABEL_ALL):
        subjects = [s for s in per_subject if label_of[s] == label]
        if len(subjects) < folds:
            kind = "HEM" if label == LABEL_HEM else "ALL"
            raise DatasetError(
                f"{folds} folds need at least {folds} {kind} subjects; found {len(subjects)}"
            )
        rng.shuffle(subjects)
        subjects.sort(key=lambda s: per_subject[s], reverse=True)
        load = [0] * folds
        for subject in subjects:
            target = min(range(folds), key=lambda k: (load[k], k))
            assignment[subject] = target
            load[target] += per_subject[subject]
    return [
        Split(
            name=f"fold{k}",
            train=tuple(i for i in images if assignment[i.subject] != k),
            validation=tuple(i for i in images if assignment[i.subject] == k),
        )
        for k in range(folds)
    ]


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


def make_split(config: TrainConfig, images: Sequence[CellImage]) -> Split | None:
    """The split a training configuration asks for; None without validation."""
    if config.val_fold is not None:
        return subject_grouped_folds(images, config.folds, config.seed)[config.val_fold]
    if config.val_subjects is not None:
        return held_out_subjects_split(images, config.val_subjects)
    if config.val_official_fold is not None:
        return official_fold_split(images, config.val_official_fold)
    return None
