import numpy as np
import pytest

from app.core.gradcam import HEAT_ON_CELL_GOAL
from app.core.recipe import PreprocessConfig
from training.data.dataset_index import index_dataset
from training.evaluation.heat_in_cell import (
    heat_in_cell_fractions,
    score_heat,
    summarize,
    summarize_scores,
)

RECIPE = PreprocessConfig(input_size=64, mean=(0.1, 0.1, 0.1), std=(0.2, 0.2, 0.2))


@pytest.fixture
def fixture_cells(cnmc_root):
    return index_dataset(cnmc_root).images


def test_evidence_on_the_cell_scores_near_one(fixture_cells, brightness_classifier):
    fractions = heat_in_cell_fractions(brightness_classifier(1.0), RECIPE, fixture_cells)
    assert len(fractions) == len(fixture_cells) == 18
    assert np.nanmean(fractions) > HEAT_ON_CELL_GOAL


def test_evidence_on_the_surround_scores_near_zero(fixture_cells, brightness_classifier):
    fractions = heat_in_cell_fractions(brightness_classifier(-1.0), RECIPE, fixture_cells)
    assert np.nanmean(fractions) < 0.2


def test_summary_counts_maps_without_heat_apart():
    summary = summarize(np.array([0.95, 0.5, np.nan]))
    assert summary == {"images": 3, "images_explained": 2, "mean": 0.725, "at_goal": 0.5}
    assert summarize(np.array([np.nan]))["mean"] is None


def test_the_deletion_check_finds_the_parts_that_matter(fixture_cells, brightness_classifier):
    """The toy's logit is the mean brightness: flattening the brightest (hottest) quarter of
    the cell to its mean colour lowers it; a random quarter leaves it about where it was."""
    scores = score_heat(brightness_classifier(1.0), RECIPE, fixture_cells)
    hottest, random = scores.hottest_quarter_logit_change, scores.random_quarter_logit_change
    assert (hottest < 0).all()
    assert np.abs(random).mean() < 0.2 * np.abs(hottest).mean()
    summary = summarize_scores(scores)
    assert summary["hottest_moves_more"] > 0.9
    assert summary["hottest_quarter_logit_change"] < summary["random_quarter_logit_change"]
