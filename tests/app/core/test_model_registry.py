import json
import shutil

import pytest

from app.core.model_registry import ModelRegistry, ModelStoreError, UnknownModelError


def test_loads_every_model_and_the_store_default(model_store):
    registry = ModelRegistry.load(model_store)
    assert sorted(registry.models) == ["brightness", "brightness-64"]
    assert registry.default_id == "brightness"
    assert registry.get().manifest.id == "brightness"
    assert registry.get("brightness-64").manifest.input.size == 64


def test_a_setting_overrides_the_default(model_store):
    assert ModelRegistry.load(model_store, "brightness-64").default_id == "brightness-64"


def test_warm_up_marks_ready(model_store):
    registry = ModelRegistry.load(model_store)
    assert not registry.warmed_up
    registry.warm_up()
    assert registry.warmed_up


def test_unknown_model(model_store):
    with pytest.raises(UnknownModelError, match="available: brightness, brightness-64"):
        ModelRegistry.load(model_store).get("nope")


@pytest.mark.parametrize(
    "problem", ["missing", "empty", "bad_default", "broken_model", "duplicate"]
)
def test_a_broken_store_refuses_to_start(tmp_path, model_store, problem):
    store = model_store
    if problem == "missing":
        store = tmp_path / "nowhere"
    elif problem == "empty":
        store = tmp_path / "empty"
        store.mkdir()
    elif problem == "bad_default":
        (store / "store.json").write_text(json.dumps({"default": "ghost"}))
    elif problem == "broken_model":
        (store / "brightness" / "model.onnx").write_bytes(b"not onnx")
    elif problem == "duplicate":
        shutil.copytree(store / "brightness", store / "copy")
    with pytest.raises(ModelStoreError):
        ModelRegistry.load(store)


@pytest.mark.parametrize("index", [None, "{}", '{"models": {}}'])
def test_without_a_default_the_store_refuses_to_start(model_store, index):
    """A missing or empty store.json once silently served whichever id sorted first."""
    store_index = model_store / "store.json"
    if index is None:
        store_index.unlink()
    else:
        recorded = json.loads(store_index.read_text())["models"]
        store_index.write_text(json.dumps({**json.loads(index), "models": recorded}))
    with pytest.raises(ModelStoreError, match="is missing" if index is None else "no default"):
        ModelRegistry.load(model_store)
    with pytest.raises(ModelStoreError, match=str(store_index)):
        ModelRegistry.load(model_store)
    if index is not None:  # the setting names one: served, checksums still checked
        assert ModelRegistry.load(model_store, "brightness-64").default_id == "brightness-64"


def test_a_card_edited_by_hand_is_refused_naming_the_file(model_store):
    """A manifest whose threshold was edited used to be served as edited."""
    card = model_store / "brightness" / "manifest.json"
    manifest = json.loads(card.read_text())
    manifest["threshold"]["value"] = 0.05
    card.write_text(json.dumps(manifest, indent=2))
    with pytest.raises(ModelStoreError, match="edited by hand") as caught:
        ModelRegistry.load(model_store)
    assert str(card) in str(caught.value)


def test_a_model_without_a_recorded_checksum_is_refused(model_store):
    index = json.loads((model_store / "store.json").read_text())
    del index["models"]["brightness-64"]
    (model_store / "store.json").write_text(json.dumps(index))
    with pytest.raises(ModelStoreError, match="records no card checksum for brightness-64"):
        ModelRegistry.load(model_store)


def test_record_model_keeps_the_default_and_adds_the_checksum(model_store):
    from app.core.manifest import card_sha256
    from app.core.model_registry import StoreIndex, record_model

    record_model(model_store, model_store / "brightness-64")
    index = StoreIndex.read(model_store)
    assert index.default == "brightness"
    assert index.card_checksums["brightness-64"] == card_sha256(model_store / "brightness-64")


def test_the_bundled_store_records_every_card():
    from app.core.model_registry import StoreIndex
    from app.settings import bundled_model_store

    store = bundled_model_store()
    index = StoreIndex.read(store)
    assert index.default == "efficientnet-lite0-linear-128-cell"  # since the 44-people runs
    assert len(index.card_checksums) == 3
    assert ModelRegistry.load(store).default_id == index.default
