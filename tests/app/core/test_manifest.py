import json
from pathlib import Path

import pytest

from app.core.manifest import ManifestError, ModelManifest, load_manifest


def test_a_valid_model_directory_loads(brightness_model_dir):
    manifest = load_manifest(brightness_model_dir)
    assert manifest.id == "brightness"
    assert manifest.labels.positive == "ALL"
    assert ModelManifest.model_validate_json(manifest.model_dump_json()) == manifest


def test_missing_manifest_is_reported(tmp_path):
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        load_manifest(tmp_path)


def test_missing_onnx_is_reported(brightness_model_dir):
    (brightness_model_dir / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(brightness_model_dir)


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "Bad Id!"), ("onnx_sha256", "abc"), ("surprise", 1), ("schema_version", 2)],
)
def test_an_incomplete_or_unknown_card_is_refused(brightness_model_dir, field, value):
    path = brightness_model_dir / "manifest.json"
    card = json.loads(path.read_text())
    card[field] = value
    path.write_text(json.dumps(card))
    with pytest.raises(ManifestError, match="invalid manifest"):
        load_manifest(brightness_model_dir)


def test_the_recipe_is_part_of_the_card(brightness_model_dir):
    path = brightness_model_dir / "manifest.json"
    card = json.loads(path.read_text())
    del card["preprocessing"]
    path.write_text(json.dumps(card))
    with pytest.raises(ManifestError, match="preprocessing"):
        load_manifest(brightness_model_dir)


def test_bundled_cards_keep_a_changelog_that_ends_at_their_version():
    """What changed in each version, oldest first, up to the version served."""
    from app.settings import bundled_model_store

    store = bundled_model_store()
    for card_path in sorted(store.glob("*/manifest.json")):
        card = load_manifest(card_path.parent)
        assert card.changelog, card.id
        assert card.changelog[-1].version == card.version
        dates = [entry.date for entry in card.changelog]
        assert dates == sorted(dates)
        assert not card.changelog[0].card_only  # a model's history starts with its weights


def test_a_changelog_entry_needs_a_version_date_and_text(brightness_model_dir):
    path = brightness_model_dir / "manifest.json"
    card = json.loads(path.read_text())
    card["changelog"] = [{"version": "1", "changes": "first"}]
    path.write_text(json.dumps(card))
    with pytest.raises(ManifestError, match="date"):
        load_manifest(brightness_model_dir)


def test_written_cards_hold_no_path_of_the_machine_that_wrote_them(tmp_path, monkeypatch):
    from app.core.manifest import load_manifest, write_manifest

    bundled = Path(__file__).parents[3] / "model_store" / "efficientnet-lite0-linear-128-cell"
    manifest = load_manifest(bundled)
    model_dir = tmp_path / "elsewhere" / manifest.id
    model_dir.mkdir(parents=True)
    local = manifest.model_copy(
        update={
            "provenance": manifest.provenance.model_copy(
                update={"training_command": f"train --data {tmp_path}/data --out /tmp/run"}
            )
        }
    )
    monkeypatch.chdir(tmp_path / "elsewhere")
    write_manifest(local, model_dir)
    written = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    assert written["provenance"]["training_command"] == "train --data …/data --out …/run"
    assert str(tmp_path) not in (model_dir / "manifest.json").read_text()
