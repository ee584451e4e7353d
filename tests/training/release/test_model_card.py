from pathlib import Path

import pytest

from tests.conftest import write_mean_brightness_model
from training.cli import main


def test_recording_in_the_card_replaces_the_earlier_evaluation(external_root, tmp_path, capsys):
    from app.core.manifest import load_manifest

    model_dir = write_mean_brightness_model(tmp_path / "brightness")
    args = ["external", "--model", str(model_dir), "--data", str(external_root)]
    for selection in ("first", "second"):
        code = main([*args, "--resamples", "30", "--record-in-card", "--selection", selection])
        assert code == 0
    capsys.readouterr()
    manifest = load_manifest(model_dir)  # the graph is untouched: its checksum still holds
    unseen = [e for e in manifest.evaluations if e.protocol.startswith("unseen subjects")]
    assert len(unseen) == 1
    metrics = unseen[0].metrics
    assert metrics["cells_preliminary_test"] == 6
    assert metrics["roc_auc_all_low"] <= metrics["roc_auc_all"] <= metrics["roc_auc_all_high"]
    assert set(unseen[0].per_subject_accuracy) == {"60", "61", "62", "H70", "H71", "H72"}
    assert manifest.selection == "second"
    assert manifest.limitations[0].startswith("On patients it never saw")
    assert sum(t.startswith("On patients it never saw") for t in manifest.limitations) == 1
    assert "preliminary-test part" in manifest.limitations[0]
    recorded = manifest.changelog[-2:]  # one card-only entry per recording, same weights
    assert all(e.card_only and e.version == manifest.version for e in recorded)
    assert "ROC AUC" in recorded[-1].changes


def test_people_a_model_learned_from_are_never_recorded_as_unseen(tmp_path, capsys):
    import shutil

    from app.settings import bundled_model_store
    from training.cli import main

    store = tmp_path / "store"
    shutil.copytree(bundled_model_store(), store)
    model = store / "efficientnet-lite0-linear-128-cell"  # trained on C-NMC_external too
    before = (model / "manifest.json").read_text()
    external = Path(__file__).parents[4] / "shared" / "data" / "C-NMC_external"
    if not external.is_dir():
        pytest.skip("../shared/data/C-NMC_external is not here")
    args = ["external", "--model", str(model), "--data", str(external), "--record-in-card"]
    assert main([*args, "--resamples", "20"]) == 2
    assert "was trained on" in capsys.readouterr().err
    assert (model / "manifest.json").read_text() == before
