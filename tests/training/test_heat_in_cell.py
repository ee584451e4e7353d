import numpy as np
import pytest

from app.preprocessing import PreprocessConfig
from training.dataset_index import index_dataset
from training.heat_in_cell import GOAL, heat_in_cell_fractions, summarize

RECIPE = PreprocessConfig(input_size=64, mean=(0.1, 0.1, 0.1), std=(0.2, 0.2, 0.2))


@pytest.fixture
def fixture_cells(cnmc_root):
    return index_dataset(cnmc_root).images


def test_evidence_on_the_cell_scores_near_one(fixture_cells, brightness_classifier):
    fractions = heat_in_cell_fractions(brightness_classifier(1.0), RECIPE, fixture_cells)
    assert len(fractions) == len(fixture_cells) == 18
    assert np.nanmean(fractions) > GOAL


def test_evidence_on_the_surround_scores_near_zero(fixture_cells, brightness_classifier):
    fractions = heat_in_cell_fractions(brightness_classifier(-1.0), RECIPE, fixture_cells)
    assert np.nanmean(fractions) < 0.2


def test_summary_counts_maps_without_heat_apart():
    summary = summarize(np.array([0.95, 0.5, np.nan]))
    assert summary == {"images": 3, "images_explained": 2, "mean": 0.725, "at_goal": 0.5}
    assert summarize(np.array([np.nan]))["mean"] is None
