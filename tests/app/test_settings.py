from pathlib import Path

from app.settings import Settings, bundled_model_store


def test_environment_variables_configure_the_server(monkeypatch, tmp_path):
    monkeypatch.setenv("LEUKOLENS_MODEL_STORE", str(tmp_path))
    monkeypatch.setenv("LEUKOLENS_DEFAULT_MODEL", "m1")
    monkeypatch.setenv("LEUKOLENS_MAX_BATCH_FILES", "8")
    settings = Settings()
    assert settings.model_store == tmp_path
    assert settings.default_model == "m1"
    assert settings.max_batch_files == 8


def test_the_default_store_is_the_bundled_one():
    store = bundled_model_store()
    assert store.name == "model_store"
    assert (store / "store.json").is_file()
    assert Settings().model_store == store
    assert isinstance(store, Path)
