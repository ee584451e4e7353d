"""A synthetic site: cells whose class shows in their blue channel, which the parent ignores."""

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from app.core.classifier import OnnxCellClassifier
from app.core.manifest import load_manifest
from tests.conftest import write_channel_mean_model
from training.cli import main
from training.release.adaptation import adapt_model
from training.release.site_refit import find_last_layer, parent_outputs
from training.release.site_reviews import AdaptationError, read_review_csv


@pytest.fixture
def parent(tmp_path) -> Path:
    return write_channel_mean_model(tmp_path / "store" / "parent", (4.0, 0.0, 0.0))


def write_site(root: Path, subjects_per_class: int, cells: int = 6, *, signal: bool = True) -> Path:
    """Cells on black; with `signal`, ALL cells bluer than HEM cells; red drawn at random."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = ["image,label,subject"]
    for label in ("ALL", "HEM"):
        for s in range(subjects_per_class):
            subject = f"{label[0]}{s}"
            for c in range(cells):
                bluer = label == "ALL" if signal else rng.random() < 0.5
                blue = rng.uniform(150, 220) if bluer else rng.uniform(60, 130)
                red = rng.uniform(60, 220)
                image = np.zeros((64, 64, 3), np.uint8)
                cv2.circle(image, (32, 32), 20, (int(blue), 90, int(red)), -1)  # BGR
                name = f"{subject}_{c}.png"
                cv2.imwrite(str(root / name), image)
                rows.append(f"{name},{label},{subject}")
    reviews = root / "reviews.csv"
    reviews.write_text("\n".join(rows) + "\n")
    return reviews


def test_the_last_layer_is_found_and_its_features_read(parent, tmp_path):
    layer = find_last_layer(onnx.load(str(parent / "model.onnx")))
    assert (layer.features, layer.weight, layer.bias, layer.transposed) == (
        "features",
        "head.weight",
        "head.bias",
        True,
    )
    reviews = write_site(tmp_path / "site", 3, cells=2)
    cells = read_review_csv(reviews, tmp_path / "site")
    outputs = parent_outputs(OnnxCellClassifier(parent), [c.path for c in cells])
    assert outputs.features.shape == (12, 3)
    np.testing.assert_allclose(outputs.logits, outputs.features @ [4.0, 0, 0] - 2.0, atol=1e-5)


def test_a_head_refit_learns_what_the_parent_ignores_and_a_recalibration_cannot(parent, tmp_path):
    reviews = write_site(tmp_path / "site", 4)
    results = {}
    for strength in ("recalibration", "head_refit"):
        out = tmp_path / "store" / f"site-{strength}"
        manifest = adapt_model(
            parent,
            reviews,
            tmp_path / "site",
            out,
            strength=strength,
            model_id=f"site-{strength.replace('_', '-')}",
            head_l2=0.01,
            resamples=200,
        )
        results[strength] = manifest.adaptation
        assert load_manifest(out) == manifest  # the card round-trips and matches its graph
        (entry,) = manifest.changelog  # a new model: its history starts here
        parent_version = manifest.adaptation.parent_version
        assert entry.changes.startswith(f"Adapted from parent v{parent_version} ({strength})")
    recalibrated, refit = results["recalibration"], results["head_refit"]
    assert recalibrated.after.metrics["roc_auc"] == recalibrated.before.metrics["roc_auc"]
    assert recalibrated.before.metrics["roc_auc"] < 0.75  # red carries no class
    assert refit.after.metrics["roc_auc"] > 0.95  # blue does, and the refit found it
    assert refit.better_on_held_out
    assert refit.recommended  # blue separates the classes: the gain's interval lies above 0
    assert refit.gain.low > 0
    assert refit.local_after.sensitivity.value > refit.local_before.sensitivity.value - 1
    assert refit.parent_id == "parent"
    assert {c.subject for c in refit.reviewed_cells} == {
        "A0",
        "A1",
        "A2",
        "A3",
        "H0",
        "H1",
        "H2",
        "H3",
    }
    # The refit graph computes exactly the new head on the parent's features.
    served = OnnxCellClassifier(tmp_path / "store" / "site-head_refit")
    cells = read_review_csv(reviews, tmp_path / "site")
    features = parent_outputs(OnnxCellClassifier(parent), [c.path for c in cells]).features
    new_head = parent_outputs(served, [c.path for c in cells])
    np.testing.assert_allclose(
        new_head.logits, features @ new_head.head_weight + new_head.head_bias, atol=1e-4
    )
    assert not np.allclose(new_head.head_weight, [4.0, 0.0, 0.0])


def test_too_few_subjects_and_an_existing_folder_are_refused(parent, tmp_path):
    reviews = write_site(tmp_path / "site", 2)
    with pytest.raises(AdaptationError, match="at least 3 subjects"):
        adapt_model(
            parent,
            reviews,
            tmp_path / "site",
            tmp_path / "new",
            strength="recalibration",
            model_id="new",
        )
    with pytest.raises(AdaptationError, match="never replaces"):
        adapt_model(
            parent, reviews, tmp_path / "site", parent, strength="recalibration", model_id="x"
        )


def test_the_command_says_when_the_adaptation_is_not_better(parent, tmp_path, capsys):
    site = tmp_path / "site"
    reviews = write_site(site, 3, cells=4, signal=False)  # no colour tells the classes apart
    out = tmp_path / "store" / "noise"
    args = ["adapt", "--model", str(parent), "--reviews", str(reviews), "--images", str(site)]
    assert main([*args, "--out", str(out), "--id", "noise", "--strength", "head_refit"]) == 0
    printed = capsys.readouterr().out
    assert "balanced_accuracy" in printed
    card = load_manifest(out)
    assert card.adaptation is not None
    assert not card.adaptation.better_on_held_out
    assert "NOT RECOMMENDED" in printed
    assert card.adaptation.recommended is False
    assert card.adaptation.gain.low <= 0
    assert card.limitations[0].startswith("Not recommended: gain in balanced accuracy")
    # 3 people of each class: fewer than 5 samples hold either class's cells, so Wilson
    assert card.adaptation.local_before.method == "wilson_cells"
    assert card.adaptation.head_l2 in (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # inner folds
    # The store keeps it beside the parent but refuses to make it the default unless forced.
    from app.core.model_registry import ModelRegistry, ModelStoreError, record_model

    record_model(out.parent, parent, default=True)
    record_model(out.parent, out)  # beside the parent
    with pytest.raises(ModelStoreError, match="not recommended"):
        record_model(out.parent, out, default=True)
    with pytest.raises(ModelStoreError, match="not recommended"):
        ModelRegistry.load(out.parent, "noise")
    assert ModelRegistry.load(out.parent, "noise", force_default=True).default_id == "noise"
    record_model(out.parent, out, default=True, force=True)
