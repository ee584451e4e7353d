"""Index a C-NMC 2019 tree: which image belongs to which subject, label and fold.

Subjects matter more than images here: cells of one patient share stain, scanner and
morphology, so every split downstream is made by subject. The official release also
holds pixel-identical images under different subjects, which are removed before any split.

Several roots can be indexed as one (`index_training_data`): the main training root and extra
roots of other people (e.g. `C-NMC_external`). Each image keeps its *population* (`fold1`,
`external-folds`, `external-prelim`), because those groups differ in acquisition and every
figure is reported for each of them on its own.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from app.core.image_decoding import ImageDecodeError, decode_image

LABEL_ALL = 1
LABEL_HEM = 0
LabelName = Literal["ALL", "HEM"]
LABEL_NAMES: dict[int, LabelName] = {LABEL_ALL: "ALL", LABEL_HEM: "HEM"}
CLASS_DIRECTORIES = {"all": LABEL_ALL, "hem": LABEL_HEM}
IMAGE_SUFFIXES = {".bmp", ".png"}
PRELIM_LABELS_CSV = "C-NMC_test_prelim_phase_data_labels.csv"
PRELIM_IMAGES_DIR = "C-NMC_test_prelim_phase_data"
PRELIM_FOLD = "prelim_test"
EXTERNAL_FOLDS = "external-folds"
EXTERNAL_PRELIM = "external-prelim"

_FILENAME = re.compile(r"^UID_(?P<subject>[Hh]?\d+)_(?P<rest>.+)_(?P<label>all|hem)$", re.I)


class DatasetError(ValueError):
    """The data root is not a usable C-NMC tree; the message says what is wrong."""


@dataclass(frozen=True)
class CellImage:
    path: Path
    subject: str
    label: int
    fold: str | None = None
    pixel_sha256: str = ""
    population: str = ""
    """Where the person comes from (`fold1`, `external-folds`, `external-prelim`); empty
    for an image indexed on its own."""

    @property
    def label_name(self) -> LabelName:
        return LABEL_NAMES[self.label]


@dataclass(frozen=True)
class DatasetIndex:
    images: tuple[CellImage, ...]
    duplicates_removed: int = 0
    conflicting_duplicates: int = 0
    listed_but_missing: int = 0
    """Rows of a labels CSV whose image is not in the folder (a part of a release)."""

    def subjects(self) -> dict[str, int]:
        """Subject -> label."""
        return {image.subject: image.label for image in self.images}

    def counts(self) -> list[tuple[str | None, str, str, int]]:
        """(fold, label, subject, images) rows in a stable order."""
        tally = Counter((i.fold, i.label_name, i.subject) for i in self.images)
        return sorted(
            ((fold, label, subject, n) for (fold, label, subject), n in tally.items()),
            key=lambda row: (row[0] or "", row[1], subject_sort_key(row[2])),
        )


def subject_label(subject: str) -> int:
    """C-NMC names its HEM (normal) subjects H<n> and its ALL subjects <n>: every cell of a
    subject carries the subject's label."""
    return LABEL_HEM if subject.startswith("H") else LABEL_ALL


def subject_sort_key(subject: str) -> tuple[int, int]:
    return (int(subject_label(subject) == LABEL_HEM), int(subject.lstrip("H")))


def parse_filename(path: Path) -> tuple[str, int]:
    """Subject ("16", "H10") and label from `UID_<n>_..._all` / `UID_H<n>_..._hem`."""
    match = _FILENAME.match(path.stem)
    if match is None:
        raise DatasetError(
            f"{path}: file name does not follow UID_<subject>_<image>_<cell>_<all|hem>"
        )
    subject = match["subject"].upper()
    label = CLASS_DIRECTORIES[match["label"].lower()]
    if subject_label(subject) != label:
        raise DatasetError(f"{path}: subject {subject} and label {match['label']} disagree")
    return subject, label


def read_image(path: Path) -> np.ndarray:
    """A file through `decode_image` itself, so training reads pixels exactly as served."""
    try:
        return decode_image(path.read_bytes())
    except ImageDecodeError as error:
        raise ImageDecodeError(f"{path}: {error}") from error


def pixel_sha256(path: Path) -> str:
    """Hash of the decoded pixels, so a BMP and its PNG twin hash alike."""
    try:
        rgb = read_image(path)
    except ImageDecodeError as error:
        raise DatasetError(f"unreadable image: {error}") from error
    digest = hashlib.sha256(np.asarray(rgb.shape, dtype=np.int64).tobytes())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def find_class_directories(root: Path) -> list[tuple[str | None, Path]]:
    """(fold, directory) for every all/hem folder in the official layout or a part of it."""
    if not root.exists():
        raise DatasetError(f"{root}: no such directory")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    for base in (root / "training_data", root):
        folds = sorted(p for p in base.glob("fold_*") if p.is_dir())
        if folds:
            found: list[tuple[str | None, Path]] = [
                (fold.name, fold / name)
                for fold in folds
                for name in CLASS_DIRECTORIES
                if (fold / name).is_dir()
            ]
            if not found:
                raise DatasetError(f"{base}: fold folders hold no 'all' or 'hem' folder")
            return found
    direct: list[tuple[str | None, Path]] = [
        (None, root / name) for name in CLASS_DIRECTORIES if (root / name).is_dir()
    ]
    if direct:
        return direct
    raise DatasetError(
        f"{root}: expected training_data/fold_*/{{all,hem}}/, fold_*/{{all,hem}}/ "
        "or {all,hem}/ beneath it"
    )


def list_images(root: Path) -> list[CellImage]:
    images: list[CellImage] = []
    for fold, directory in find_class_directories(root):
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            subject, label = parse_filename(path)
            if label != CLASS_DIRECTORIES[directory.name]:
                raise DatasetError(f"{path}: a {LABEL_NAMES[label]} file in {directory}")
            images.append(CellImage(path=path, subject=subject, label=label, fold=fold))
    if not images:
        raise DatasetError(f"{root}: no .bmp or .png images found")
    return images


def hash_images(images: Sequence[CellImage], workers: int = 4) -> list[CellImage]:
    # OpenCV releases the GIL while decoding, so threads are enough.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashes = list(pool.map(lambda image: pixel_sha256(image.path), images))
    return [replace(image, pixel_sha256=h) for image, h in zip(images, hashes, strict=True)]


def remove_duplicates(images: Iterable[CellImage]) -> DatasetIndex:
    """Keep the first of each pixel-identical group; drop groups whose labels disagree."""
    groups: dict[str, list[CellImage]] = {}
    for image in images:
        groups.setdefault(image.pixel_sha256, []).append(image)
    kept: list[CellImage] = []
    removed = conflicting = 0
    for group in groups.values():
        if len({image.label for image in group}) > 1:
            conflicting += len(group)
            removed += len(group)
            continue
        kept.append(group[0])
        removed += len(group) - 1
    kept.sort(key=lambda image: str(image.path))
    return DatasetIndex(tuple(kept), duplicates_removed=removed, conflicting_duplicates=conflicting)


def index_dataset(root: Path, *, deduplicate: bool = True) -> DatasetIndex:
    images = list_images(root)
    if not deduplicate:
        return DatasetIndex(tuple(images))
    return remove_duplicates(hash_images(images))


MAIN_POPULATION = "main"


def main_population(folds: set[str | None]) -> str:
    """The main root is one population: named for its official fold when it holds one
    (`fold_1` -> `fold1`), else `main`, so that a root of several folds keeps the folds its
    earlier cross-validations were dealt (populations are strata)."""
    if len(folds) == 1:
        (fold,) = folds
        if fold is not None:
            return fold.replace("_", "")
    return MAIN_POPULATION


def prelim_files(root: Path) -> tuple[Path, Path] | None:
    """(images folder, labels CSV) of the preliminary test set in the official layout
    (`C-NMC_test_prelim_phase_data/C-NMC_test_prelim_phase_data/*.bmp`, the CSV beside the
    inner folder) or flattened (`C-NMC_test_prelim_phase_data/*.png`, the CSV at the root)."""
    csvs = [root / PRELIM_LABELS_CSV, root / PRELIM_IMAGES_DIR / PRELIM_LABELS_CSV]
    folders = [root / PRELIM_IMAGES_DIR / PRELIM_IMAGES_DIR, root / PRELIM_IMAGES_DIR]
    labels_csv = next((path for path in csvs if path.is_file()), None)
    if labels_csv is None:
        return None
    for folder in folders:
        if folder.is_dir() and any(p.is_file() and p.suffix != ".csv" for p in folder.iterdir()):
            return folder, labels_csv
    return None


@dataclass(frozen=True)
class ExtraRoot:
    """The images of an extra root, each part tagged with its population."""

    images: tuple[CellImage, ...]
    prelim_listed: int
    prelim_missing: int


def list_extra_root(root: Path) -> ExtraRoot:
    """Cells of the official training folds (`training_data/fold_*/{all,hem}`) and of the
    preliminary test set (numbered files with the labels CSV) under `root`. A part that is
    there is read strictly: a misnamed or mislabelled file is an error."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory")
    has_training_folds = any(
        path.is_dir()
        for pattern in ("training_data", "fold_*", "all", "hem")
        for path in root.glob(pattern)
    )
    training_folds = [
        replace(image, population=EXTERNAL_FOLDS)
        for image in (list_images(root) if has_training_folds else [])
    ]
    prelim: list[CellImage] = []
    listed = missing = 0
    files = prelim_files(root)
    if files is not None:
        prelim_index = index_prelim_test(*files, allow_missing=True)
        prelim = [replace(image, population=EXTERNAL_PRELIM) for image in prelim_index.images]
        missing = prelim_index.listed_but_missing
        listed = len(prelim) + missing
    if not training_folds and not prelim:
        raise DatasetError(
            f"{root}: found neither training_data/fold_*/{{all,hem}} images nor "
            f"{PRELIM_IMAGES_DIR}/ with {PRELIM_LABELS_CSV}"
        )
    return ExtraRoot((*training_folds, *prelim), listed, missing)


def index_training_data(root: Path, extra: Sequence[Path] = ()) -> DatasetIndex:
    """The main root and every extra root as one index, de-duplicated by pixels across all
    of them (the release holds a few cells under two subjects), each image with its
    population. With no extra root this is `index_dataset` with populations filled in."""
    listed = list_images(root)
    population = main_population({image.fold for image in listed})
    main = [replace(image, population=population) for image in listed]
    others = [image for path in extra for image in list_extra_root(path).images]
    index = remove_duplicates(hash_images([*main, *others]))
    subjects: dict[str, str] = {}
    for image in index.images:
        if subjects.setdefault(image.subject, image.population) != image.population:
            raise DatasetError(
                f"subject {image.subject} appears in two populations "
                f"({subjects[image.subject]}, {image.population}): a person is one group"
            )
    return index


def populations_of(images: Iterable[CellImage]) -> list[str]:
    """The populations present, in a stable order (the main root's first)."""
    order = {EXTERNAL_FOLDS: 1, EXTERNAL_PRELIM: 2}
    return sorted({image.population for image in images}, key=lambda p: (order.get(p, 0), p))


def index_prelim_test(
    images_dir: Path, labels_csv: Path, *, allow_missing: bool = False
) -> DatasetIndex:
    """The preliminary test set: numbered images, labels (1 = ALL) and subjects in a CSV.

    Rows are matched to files by stem, so `11.bmp` in the CSV is `11.bmp` or `11.png` on disk.
    With `allow_missing`, rows without a file are counted (`listed_but_missing`), not fatal:
    a part of the release is still worth measuring on, as long as the report says how much.
    """
    if not labels_csv.is_file():
        raise DatasetError(f"{labels_csv}: labels CSV not found")
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder not found")
    on_disk = {
        path.stem: path
        for path in sorted(images_dir.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    }
    images: list[CellImage] = []
    missing = 0
    with labels_csv.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        required = {"Patient_ID", "new_names", "labels"}
        if reader.fieldnames is None or not required <= set(reader.fieldnames):
            raise DatasetError(f"{labels_csv}: needs columns {sorted(required)}")
        for row in reader:
            listed = row["new_names"].strip()
            path = on_disk.get(Path(listed).stem)
            if path is None:
                if not allow_missing:
                    raise DatasetError(f"{labels_csv}: lists {listed}, missing in {images_dir}")
                missing += 1
                continue
            label = int(row["labels"])
            if label not in LABEL_NAMES:
                raise DatasetError(f"{labels_csv}: label {label} for {listed} is not 0 or 1")
            subject = _prelim_subject(row["Patient_ID"], label)
            images.append(CellImage(path=path, subject=subject, label=label, fold=PRELIM_FOLD))
    if not images:
        raise DatasetError(f"{labels_csv}: no row has its image in {images_dir}")
    return DatasetIndex(tuple(images), listed_but_missing=missing)


def _prelim_subject(patient_id: str, label: int) -> str:
    match = _FILENAME.match(Path(patient_id.strip()).stem)
    if match is not None:
        return match["subject"].upper()
    return f"{LABEL_NAMES[label]}:{patient_id.strip()}"
