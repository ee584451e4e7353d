import json
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cell_colour import find_foreground
from app.core.image_decoding import decode_image
from app.core.quality_checks import (
    CellMeasurements,
    QualityReference,
    build_reference,
    input_warnings,
    measure_cell,
    measure_foreground,
    uncertainty_warning,
)

SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"
BUNDLED_STORE = Path(__file__).parents[3] / "model_store"


def fixture_cells(cnmc_root) -> list[np.ndarray]:
    return [
        decode_image(p.read_bytes())
        for p in sorted((cnmc_root / "training_data").glob("*/*/*.png"))
    ]


@pytest.fixture
def bundled_reference() -> QualityReference:
    """The reference the default model was exported with (all its training cells)."""
    default = json.loads((BUNDLED_STORE / "store.json").read_text())["default"]
    card = json.loads((BUNDLED_STORE / default / "manifest.json").read_text())
    assert card["quality_reference"] is not None
    return QualityReference.model_validate(card["quality_reference"])


def codes(rgb, reference) -> list[str]:
    return [w.code for w in input_warnings(measure_cell(rgb, 15), reference)]


def test_real_cells_get_no_warning_unless_cut_by_the_border(cnmc_root, bundled_reference):
    for rgb in fixture_cells(cnmc_root):
        mask = rgb.max(axis=2) > 15
        cut = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        assert codes(rgb, bundled_reference) == (["touches_border"] if cut else [])


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"])
def test_photographs_are_flagged(name, bundled_reference):
    rgb = decode_image((SAMPLE_DATA / name).read_bytes())
    found = set(codes(rgb, bundled_reference))
    assert found - {"uncertain"}, name


def test_a_smear_field_is_flagged(cnmc_root, bundled_reference):
    """Several cells on the pale background of an unsegmented smear."""
    field = np.full((900, 900, 3), (226, 200, 214), np.uint8)
    for index, cell in enumerate(fixture_cells(cnmc_root)[:6]):
        row, col = divmod(index, 3)
        crop = cell[80:370, 80:370]
        inside = crop.max(axis=2) > 15
        patch = field[row * 300 : row * 300 + 290, col * 300 : col * 300 + 290]
        patch[inside] = crop[inside]
    found = set(codes(field, bundled_reference))
    assert "no_background" in found


def test_each_check_on_a_modified_real_cell(cnmc_root):
    cells = fixture_cells(cnmc_root)
    reference = build_reference(measure_cell(c, 15) for c in cells * 2)
    cell = cells[0]
    assert "no_cell" in codes(np.zeros_like(cell), reference)
    two = cell.copy()
    two[:120, :120] = cell[165:285, 165:285]
    assert "multiple_objects" in codes(two, reference)
    shifted = np.roll(cell, 200, axis=1)
    assert "touches_border" in codes(shifted, reference)
    small = np.zeros_like(cell)
    small[150:300, 150:300] = cv2.resize(cell, (150, 150), interpolation=cv2.INTER_AREA)
    assert "too_small" in codes(small, reference)
    large = cv2.resize(cell, None, fx=1.8, fy=1.8)[180:630, 180:630]
    assert "too_large" in codes(large, reference)
    assert "blurry" in codes(cv2.GaussianBlur(cell, (0, 0), 4), reference)
    green = cell.copy()
    inside = cell.max(axis=2) > 15
    green[inside] = np.clip(green[inside].astype(int) * [0.3, 1.8, 0.3], 0, 255).astype(np.uint8)
    assert "unusual_stain" in codes(green, reference)


def test_a_real_cell_is_measured(real_cell_png):
    measured = measure_cell(decode_image(real_cell_png), 15)
    assert 0.05 < measured.foreground_fraction < 0.5
    assert measured.objects == 1
    assert measured.area == pytest.approx(measured.foreground_fraction * 450 * 450)


def test_uncertain_near_the_threshold():
    assert [w.code for w in uncertainty_warning(0.55, 0.5, None)] == ["uncertain"]
    assert uncertainty_warning(0.9, 0.5, None) == []


# -- the checks measured once per image over the cell's box give the same answers as before ---

RECIPE_REFERENCE = Path(__file__).parents[2] / "fixtures" / "recipe_reference.npz"
"""The earlier code's measurements and warnings (commit 5b557d6) on the fixture cells and six
synthetic edge cases; see tests/app/core/test_preprocessing.py."""


def reference_cases(cnmc_root) -> tuple[dict[str, np.ndarray], np.lib.npyio.NpzFile]:
    reference = np.load(RECIPE_REFERENCE)
    images = {p.stem: decode_image(p.read_bytes()) for p in sorted(cnmc_root.rglob("*.png"))}
    for key in reference.files:
        if key.startswith("input/"):
            images[key.removeprefix("input/")] = reference[key]
    return images, reference


def as_row(measured: CellMeasurements) -> list[float]:
    return [
        measured.foreground_fraction,
        measured.area,
        measured.objects,
        float(measured.touches_border),
        measured.sharpness,
        *measured.stain_rgb,
    ]


def test_measurements_and_warnings_equal_the_earlier_code(cnmc_root):
    images, reference = reference_cases(cnmc_root)
    cards = [json.loads(p.read_text()) for p in sorted(BUNDLED_STORE.glob("*/manifest.json"))]
    # The cards the earlier code was run with; a model bundled since has no earlier answers.
    models = [
        c for c in cards if any(k.startswith(f"warnings/{c['id']}/") for k in reference.files)
    ]
    assert {c["id"] for c in models} == {"convnext-atto-128-cell", "efficientnet-lite0-128-cell"}
    assert len(images) == 24
    seen_codes: set[str] = set()
    with reference:
        for name, image in images.items():
            expected = reference[f"measured/{name}"].tolist()
            assert as_row(measure_cell(image, 15)) == expected, name
            shared = measure_foreground(image, find_foreground(image, 15))
            assert as_row(shared) == expected, name
            for card in models:
                quality = QualityReference.model_validate(card["quality_reference"])
                earlier = str(reference[f"warnings/{card['id']}/{name}"])
                codes_now = ",".join(w.code for w in input_warnings(shared, quality))
                assert codes_now == earlier, (name, card["id"])
                seen_codes.update(filter(None, earlier.split(",")))
    assert {"no_cell", "no_background", "multiple_objects", "touches_border"} <= seen_codes


def earlier_measure_cell(rgb: np.ndarray, threshold: int) -> list[float]:
    """measure_cell as it was, over the whole frame."""
    mask = (rgb.max(axis=2) > threshold).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA] if count > 1 else np.zeros(0)
    largest = float(areas.max()) if areas.size else 0.0
    objects = int((areas >= 0.05 * largest).sum()) if areas.size else 0
    touches = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    inside = mask.astype(bool)
    sharpness, stain = 0.0, np.zeros(3)
    if inside.any():
        eroded = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)
        laplacian = cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F)
        sharpness = float(laplacian[eroded if eroded.any() else inside].var())
        stain = rgb[inside].mean(axis=0)
    return [
        float(inside.mean()),
        float(inside.sum()),
        objects,
        float(touches),
        sharpness,
        *(float(v) for v in stain),
    ]


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    blobs=st.integers(0, 4),
    threshold=st.integers(0, 80),
)
def test_any_image_is_measured_as_by_the_earlier_code(height, width, seed, blobs, threshold):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 30, (height, width, 3), dtype=np.uint8)
    for _ in range(blobs):
        centre = (int(rng.integers(-8, width + 8)), int(rng.integers(-8, height + 8)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(1, 30)), colour, -1)
    assert as_row(measure_cell(image, threshold)) == earlier_measure_cell(image, threshold)
