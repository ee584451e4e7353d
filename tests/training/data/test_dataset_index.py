import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.core.image_decoding import decode_image
from training.data.dataset_index import (
    LABEL_ALL,
    LABEL_HEM,
    DatasetError,
    index_dataset,
    index_prelim_test,
    parse_filename,
    pixel_sha256,
    read_image,
    subject_label,
    subject_sort_key,
)


def write_bmp(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def official_tree(root: Path, cnmc_root: Path) -> Path:
    """The fixtures re-laid as the official release: BMP files in folds 0 and 2."""
    sources = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    for number, source in enumerate(sources):
        fold = "fold_0" if number % 2 else "fold_2"
        name = source.stem.replace("UID_H", "UID_h") if number % 4 == 1 else source.stem
        write_bmp(
            root / "C-NMC_Leukemia/training_data" / fold / source.parent.name / f"{name}.bmp",
            read_image(source),
        )
    return root / "C-NMC_Leukemia"


@pytest.mark.parametrize(
    ("name", "subject", "label"),
    [
        ("UID_16_11_1_all.bmp", "16", LABEL_ALL),
        ("UID_H10_100_1_hem.png", "H10", LABEL_HEM),
        ("UID_h22_9_7_hem.bmp", "H22", LABEL_HEM),
        ("UID_51_1_12_ALL.BMP", "51", LABEL_ALL),
    ],
)
def test_subject_and_label_come_from_the_file_name(name, subject, label):
    assert parse_filename(Path(name)) == (subject, label)


@pytest.mark.parametrize("name", ["cell.bmp", "UID_16_1_all_extra.bmp", "UID_H10_1_1_all.bmp"])
def test_bad_file_names_are_named_in_the_error(name):
    with pytest.raises(DatasetError, match=name.split(".")[0]):
        parse_filename(Path(name))


def test_indexes_the_fixture_fold(cnmc_root):
    index = index_dataset(cnmc_root)
    assert len(index.images) == 18
    assert index.duplicates_removed == 0
    assert index.subjects() == {
        "16": LABEL_ALL,
        "23": LABEL_ALL,
        "30": LABEL_ALL,
        "H10": LABEL_HEM,
        "H14": LABEL_HEM,
        "H22": LABEL_HEM,
    }
    assert {row[0] for row in index.counts()} == {"fold_1"}
    assert all(n == 3 for *_, n in index.counts())


def test_reads_the_official_bmp_layout_with_lower_case_h(tmp_path, cnmc_root):
    root = official_tree(tmp_path, cnmc_root)
    index = index_dataset(root)
    assert len(index.images) == 18
    assert {image.fold for image in index.images} == {"fold_0", "fold_2"}
    assert {image.path.suffix for image in index.images} == {".bmp"}
    assert "H10" in index.subjects()


def test_png_and_bmp_of_the_same_cell_hash_alike(tmp_path, cnmc_root):
    png = next((cnmc_root / "training_data/fold_1/all").glob("*.png"))
    bmp = tmp_path / "same.bmp"
    write_bmp(bmp, decode_image(png.read_bytes()))
    assert pixel_sha256(bmp) == pixel_sha256(png)


def test_pixel_identical_images_under_other_subjects_are_removed(tmp_path, cnmc_root):
    root = tmp_path / "data"
    shutil.copytree(cnmc_root, root)
    source = root / "training_data/fold_1/all/UID_16_11_1_all.png"
    shutil.copy(source, root / "training_data/fold_1/all/UID_23_99_1_all.png")
    hem_copy = root / "training_data/fold_1/hem/UID_H10_99_1_hem.png"
    shutil.copy(root / "training_data/fold_1/all/UID_30_10_1_all.png", hem_copy)
    index = index_dataset(root)
    names = {image.path.name for image in index.images}
    assert "UID_16_11_1_all.png" in names
    assert "UID_23_99_1_all.png" not in names
    # A cell filed under both labels cannot be trusted: both copies go.
    assert "UID_30_10_1_all.png" not in names
    assert "UID_H10_99_1_hem.png" not in names
    assert index.duplicates_removed == 3
    assert index.conflicting_duplicates == 2
    assert len(index_dataset(root, deduplicate=False).images) == 20


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "no such directory"),
        ("empty", "expected training_data"),
        ("no_class_folders", "hold no 'all' or 'hem'"),
        ("no_images", "no .bmp or .png images"),
        ("unreadable", "unreadable image"),
        ("wrong_folder", "a HEM file in"),
    ],
)
def test_a_bad_root_fails_with_a_message_naming_the_problem(tmp_path, layout, message):
    root = tmp_path / "root"
    fold = root / "training_data/fold_0"
    if layout != "missing":
        root.mkdir()
    if layout == "no_class_folders":
        fold.mkdir(parents=True)
    if layout == "no_images":
        (fold / "all").mkdir(parents=True)
        (fold / "all/readme.txt").write_text("nothing here")
    if layout == "unreadable":
        (fold / "all").mkdir(parents=True)
        (fold / "all/UID_1_1_1_all.bmp").write_bytes(b"BM garbage")
    if layout == "wrong_folder":
        write_bmp(fold / "all/UID_H1_1_1_hem.bmp", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match=message):
        index_dataset(root)


def test_reads_the_preliminary_test_set(tmp_path, cnmc_root):
    images_dir = tmp_path / "C-NMC_test_prelim_phase_data"
    sources = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:4]
    rows = ["Patient_ID,new_names,labels"]
    for number, source in enumerate(sources, start=1):
        write_bmp(images_dir / f"{number}.bmp", read_image(source))
        label = 1 if source.stem.endswith("_all") else 0
        rows.append(f"{source.stem}.bmp,{number}.bmp,{label}")
    csv_path = tmp_path / "C-NMC_test_prelim_phase_data_labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    index = index_prelim_test(images_dir, csv_path)
    assert [image.path.name for image in index.images] == ["1.bmp", "2.bmp", "3.bmp", "4.bmp"]
    assert [image.subject for image in index.images] == ["16", "16", "16", "23"]
    assert {image.fold for image in index.images} == {"prelim_test"}


def test_preliminary_csv_naming_a_missing_image_fails(tmp_path):
    (tmp_path / "imgs").mkdir()
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("Patient_ID,new_names,labels\nUID_1_1_1_all.bmp,1.bmp,1\n")
    with pytest.raises(DatasetError, match=r"1\.bmp"):
        index_prelim_test(tmp_path / "imgs", csv_path)


def test_subject_label_and_order_follow_the_h_prefix():
    assert subject_label("H10") == LABEL_HEM
    assert subject_label("16") == LABEL_ALL
    subjects = ["H22", "30", "H3", "16"]
    assert sorted(subjects, key=subject_sort_key) == ["16", "30", "H3", "H22"]


def test_training_data_joins_extra_roots_with_each_cell_population(cnmc_root, external_people_root):
    from collections import Counter

    from training.data.dataset_index import index_training_data, populations_of

    index = index_training_data(cnmc_root, [external_people_root])
    populations = Counter(image.population for image in index.images)
    assert populations_of(index.images) == ["fold1", "external-folds", "external-prelim"]
    assert populations["fold1"] == len(index_dataset(cnmc_root).images)
    # the image that sits in both external parts is kept once; the CSV's missing rows are not
    assert index.duplicates_removed >= 1
    external = [i for i in index.images if i.population != "fold1"]
    assert len({i.pixel_sha256 for i in index.images}) == len(index.images)
    assert {i.subject for i in external}.isdisjoint(
        {i.subject for i in index.images if i.population == "fold1"}
    )
    prelim = [i for i in index.images if i.population == "external-prelim"]
    assert prelim
    assert all(i.path.parent.name == "C-NMC_test_prelim_phase_data" for i in prelim)


def test_training_data_alone_is_the_plain_index_with_populations(cnmc_root):
    from training.data.dataset_index import index_training_data

    plain = index_dataset(cnmc_root).images
    combined = index_training_data(cnmc_root).images
    assert [i.path for i in combined] == [i.path for i in plain]
    assert {i.population for i in combined} == {"fold1"}


def test_training_data_refuses_a_person_in_two_populations(cnmc_root, tmp_path):
    from training.data.dataset_index import index_training_data

    extra = tmp_path / "extra" / "training_data" / "fold_0" / "all"
    extra.mkdir(parents=True)
    source = next((cnmc_root / "training_data/fold_1/all").glob("UID_16_*.png"))
    rgb = cv2.imread(str(source))
    cv2.imwrite(str(extra / "UID_16_99_1_all.png"), 255 - rgb)  # new pixels, same person
    with pytest.raises(DatasetError, match="two populations"):
        index_training_data(cnmc_root, [tmp_path / "extra"])


def test_a_main_root_of_several_official_folds_is_one_population(tmp_path, cnmc_root):
    import shutil

    from training.data.dataset_index import index_training_data

    root = tmp_path / "release" / "training_data"
    for fold, label in (("fold_0", "all"), ("fold_2", "hem")):
        (root / fold / label).mkdir(parents=True)
    sources = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    for source in sources:
        fold = "fold_0" if source.parent.name == "all" else "fold_2"
        shutil.copy(source, root / fold / source.parent.name / source.name)
    index = index_training_data(tmp_path / "release")
    assert {i.population for i in index.images} == {"main"}  # folds dealt as before
    assert {i.population for i in index_training_data(cnmc_root).images} == {"fold1"}
