"""The project's own training data, as indexed: 55 people in three populations. Pinned so that a
change to the index, or to the data beside the checkout, cannot pass unnoticed into a model
choice (docs/model-selection.md)."""

from collections import Counter
from pathlib import Path

import pytest

from training.data.dataset_index import LABEL_HEM, index_training_data, pixel_sha256

SHARED = Path(__file__).parents[4] / "shared" / "data"
FOLD1, EXTERNAL = SHARED / "C-NMC_Leukemia", SHARED / "C-NMC_external"

pytestmark = pytest.mark.skipif(
    not (FOLD1.is_dir() and EXTERNAL.is_dir()),
    reason="../shared/data (C-NMC fold 1 and C-NMC_external) is not beside this checkout",
)


@pytest.fixture(scope="module")
def index():
    return index_training_data(FOLD1, [EXTERNAL])


def test_counts_per_population(index):
    cells = Counter(image.population for image in index.images)
    people = {p: {i.subject for i in index.images if i.population == p} for p in cells}
    donors = {
        p: {i.subject for i in index.images if i.population == p and i.label == LABEL_HEM}
        for p in cells
    }
    assert cells == {"fold1": 3576, "external-folds": 1823, "external-prelim": 51}
    assert {p: len(s) for p, s in people.items()} == {
        "fold1": 14,
        "external-folds": 30,
        "external-prelim": 11,
    }
    assert {p: len(s) for p, s in donors.items()} == {
        "fold1": 3,
        "external-folds": 12,
        "external-prelim": 6,
    }
    assert {"15", "17", "19", "22", "26", "43", "H8", "H9", "H16", "H17", "H46"} <= people[
        "external-folds"
    ]


def test_no_person_is_in_two_populations(index):
    populations_of = {}
    for image in index.images:
        populations_of.setdefault(image.subject, set()).add(image.population)
    assert len(populations_of) == 55
    assert all(len(found) == 1 for found in populations_of.values())


def test_no_external_cell_has_the_pixels_of_a_fold1_cell(index):
    assert index.duplicates_removed == 0
    fold1 = {i.pixel_sha256 for i in index.images if i.population == "fold1"}
    external = [i for i in index.images if i.population != "fold1"]
    assert len(fold1) == 3576
    assert not fold1 & {i.pixel_sha256 for i in external}
    # The hashes are of decoded pixels, as the index computes them for every root alike.
    assert pixel_sha256(external[0].path) == external[0].pixel_sha256
