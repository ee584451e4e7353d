import json
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from app.preprocessing import decode_image
from app.quality_checks import (
    QualityReference,
    build_reference,
    input_warnings,
    measure_cell,
    uncertainty_warning,
)

SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"
BUNDLED_STORE = Path(__file__).parents[2] / "model_store"


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
