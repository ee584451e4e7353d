import json
import shutil

import pytest

from app.model_registry import ModelRegistry, ModelStoreError, UnknownModelError


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
