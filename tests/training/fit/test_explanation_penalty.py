import json

import numpy as np
import pytest
import torch

from app.core.recipe import PreprocessConfig, normalize_to_tensor, prepare_image
from training.data.dataset_index import index_dataset, read_image
from training.evaluation.heat_in_cell import heat_in_cell_fractions
from training.fit.checkpoints import load_trained_model
from training.fit.explanation_penalty import cell_share_per_position, logits_and_heat_off_cell
from training.fit.models import create_classifier
from training.fit.train_config import TrainConfig
from training.fit.trainer import train

RECIPE = PreprocessConfig(input_size=64, mean=(0.1, 0.1, 0.1), std=(0.2, 0.2, 0.2))


def normalised(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([normalize_to_tensor(p, RECIPE) for p in pixels]))


def test_the_cell_share_follows_the_mask():
    image = np.zeros((1, 64, 64, 3), np.uint8)
    image[0, :32, :16] = 200  # the left half of the top-left quadrant
    share = cell_share_per_position(normalised(image), RECIPE, (2, 2))
    np.testing.assert_allclose(share.numpy(), [[[0.5, 0.0], [0.0, 0.0]]], atol=1e-6)


@pytest.fixture
def fixture_batch(cnmc_root):
    images = index_dataset(cnmc_root).images
    crops = [prepare_image(read_image(i.path), RECIPE) for i in images]
    return images, normalised(np.stack(crops))


def test_the_penalty_is_the_heat_the_measure_finds_off_the_cell(
    fixture_batch, brightness_classifier
):
    """Computed on the map itself (not upsampled), it agrees with the served measure to a few
    points, image by image."""
    images, batch = fixture_batch
    for weight in (1.0, -1.0):
        model = brightness_classifier(weight)
        logits, off_cell = logits_and_heat_off_cell(model, batch, RECIPE)
        torch.testing.assert_close(logits, model(batch))
        in_cell = 1 - off_cell.detach().numpy()
        measured = heat_in_cell_fractions(model, RECIPE, images)
        np.testing.assert_allclose(in_cell, measured, atol=0.05)
        assert measured.mean() > 0.9 if weight > 0 else measured.mean() < 0.1


def test_the_penalty_pulls_the_evidence_onto_the_cell(fixture_batch, brightness_classifier):
    """Its gradient makes a surround-reading model read the cell instead."""
    _, batch = fixture_batch
    model = brightness_classifier(-1.0)
    _, off_cell = logits_and_heat_off_cell(model, batch, RECIPE)
    off_cell.mean().backward()
    assert model.head.weight.grad is not None
    assert model.head.weight.grad.item() > 0  # gradient descent lowers the negative weight's pull


@pytest.mark.slow
def test_training_with_the_penalty_keeps_batch_norm_as_served(cnmc_root, tmp_path):
    """The weights learn; batch-norm statistics stay those the served graph will use."""
    config = TrainConfig(
        data=cnmc_root,
        out=tmp_path / "run",
        arch="tf_efficientnet_lite0",
        img_size=32,
        head_epochs=0,
        epochs=1,
        batch_size=6,
        off_cell_heat_penalty=1.0,
    )
    initial = create_classifier("tf_efficientnet_lite0").state_dict()
    trained = load_trained_model(train(config).run_dir).state_dict()
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert 0.0 <= rows[-1]["train_heat_off_cell"] <= 1.0
    statistics = [k for k in initial if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in initial if k.endswith("conv_stem.weight")]
    assert statistics
    assert weights
    for key in statistics:
        torch.testing.assert_close(trained[key], initial[key])
    assert not torch.equal(trained[weights[0]], initial[weights[0]])
