import json

import numpy as np

from app.core.cell_colour import foreground_mask
from training.cli import main
from training.data.dataset_index import read_image
from training.evaluation.colour_counterfactual import ColourStatistics, cell_statistics, recolour


def test_recolouring_matches_the_target_statistics_inside_the_cell(cnmc_root):
    path = next((cnmc_root / "training_data/fold_1/all").glob("*.png"))
    rgb = read_image(path)
    target = ColourStatistics(mean=np.array([160.0, 120.0, 170.0]), std=np.array([10.0, 8.0, 12.0]))
    out = recolour(rgb, target, 15)
    mean, std = cell_statistics(out, 15)
    np.testing.assert_allclose(mean, target.mean, atol=2.0)
    np.testing.assert_allclose(std, target.std, rtol=0.1)
    assert np.array_equal(
        foreground_mask(out, 15), foreground_mask(rgb, 15)
    )  # same cell, same crop
    assert (out[~foreground_mask(rgb, 15)] == rgb[~foreground_mask(rgb, 15)]).all()


def test_a_model_of_brightness_is_caught(brightness_model_dir, cnmc_root, capsys):
    """The test model's output is the mean brightness: re-colouring must move its answers."""
    code = main(
        ["counterfactual", "--model", str(brightness_model_dir), "--data", str(cnmc_root), "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 18
    assert report["mean_absolute_probability_change"] > 0.001
    assert (
        report["auc_drop"] == round(report["roc_auc"] - report["roc_auc_recoloured"], 5)
        or abs(report["auc_drop"] - (report["roc_auc"] - report["roc_auc_recoloured"])) < 1e-4
    )


def test_cell_colour_standardisation_hides_colour_even_from_a_brightness_model(
    brightness_model_dir, cnmc_root, capsys
):
    from app.core.manifest import load_manifest, write_manifest

    manifest = load_manifest(brightness_model_dir)
    recipe = manifest.preprocessing.model_copy(update={"standardize_cell_colour": True})
    write_manifest(manifest.model_copy(update={"preprocessing": recipe}), brightness_model_dir)
    args = ["counterfactual", "--model", str(brightness_model_dir), "--data", str(cnmc_root)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mean_absolute_probability_change"] < 0.001
    assert abs(report["auc_drop"]) < 0.02
