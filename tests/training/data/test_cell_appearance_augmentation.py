import numpy as np
import pytest
import torch

from app.core.cell_colour import foreground_mask
from app.core.image_decoding import decode_image
from app.core.recipe import PreprocessConfig, prepare_image
from training.data.cell_appearance_augmentation import cell_appearance_randomization

THRESHOLD = 15


@pytest.fixture
def prepared_cell(real_cell_png) -> np.ndarray:
    return prepare_image(decode_image(real_cell_png), PreprocessConfig(input_size=96))


def test_only_the_cell_changes_and_stays_cell(prepared_cell):
    torch.manual_seed(0)
    augment = cell_appearance_randomization(
        intensity=0.4, stain=0.1, foreground_threshold=THRESHOLD
    )
    mask = foreground_mask(prepared_cell, THRESHOLD)
    for _ in range(10):
        out = augment(prepared_cell)
        assert out.shape == prepared_cell.shape
        assert out.dtype == np.uint8
        assert np.array_equal(out[~mask], prepared_cell[~mask])  # the surround is untouched
        assert np.array_equal(foreground_mask(out, THRESHOLD), mask)  # so is the mask
        assert not np.array_equal(out[mask], prepared_cell[mask])


def test_brightness_and_colour_vary_widely_across_draws(prepared_cell):
    torch.manual_seed(1)
    augment = cell_appearance_randomization(
        intensity=0.4, stain=0.05, foreground_threshold=THRESHOLD
    )
    mask = foreground_mask(prepared_cell, THRESHOLD)
    means = np.asarray([augment(prepared_cell)[mask].mean(axis=0) for _ in range(30)])
    assert np.ptp(means.mean(axis=1)) > 30  # brightness spread in grey levels
    assert np.ptp(means[:, 0] - means[:, 2]) > 10  # the red-blue balance moves too


def test_draws_follow_torch_seed_and_zero_strength_is_identity(prepared_cell):
    augment = cell_appearance_randomization(
        intensity=0.3, stain=0.05, foreground_threshold=THRESHOLD
    )
    torch.manual_seed(5)
    first = augment(prepared_cell)
    torch.manual_seed(5)
    assert np.array_equal(first, augment(prepared_cell))
    identity = cell_appearance_randomization(intensity=0, stain=0, foreground_threshold=THRESHOLD)
    assert identity(prepared_cell) is prepared_cell
