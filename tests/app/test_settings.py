from pathlib import Path

import pytest
from pydantic import ValidationError

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


def test_slow_bodies_have_a_minimum_rate_after_a_grace_and_zero_switches_it_off(monkeypatch):
    defaults = Settings()
    assert (defaults.min_upload_bytes_per_second, defaults.upload_grace_seconds) == (10240, 5.0)
    assert defaults.limit_concurrency == 256
    monkeypatch.setenv("LEUKOLENS_MIN_UPLOAD_BYTES_PER_SECOND", "0")
    monkeypatch.setenv("LEUKOLENS_UPLOAD_GRACE_SECONDS", "0.5")
    configured = Settings()
    assert (configured.min_upload_bytes_per_second, configured.upload_grace_seconds) == (0, 0.5)
    monkeypatch.setenv("LEUKOLENS_MIN_UPLOAD_BYTES_PER_SECOND", "-1")
    with pytest.raises(ValidationError, match="min_upload_bytes_per_second"):
        Settings()
