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


def test_the_reviewer_identity_comes_from_the_environment(monkeypatch):
    import ipaddress

    monkeypatch.setenv("LEUKOLENS_REVIEWER_HEADER", "X-Forwarded-User")
    monkeypatch.setenv("LEUKOLENS_TRUSTED_PROXIES", '["10.0.0.5", "fd00::/8"]')
    settings = Settings()
    assert settings.reviewer_header == "X-Forwarded-User"
    assert settings.trusted_proxies == [
        ipaddress.ip_network("10.0.0.5/32"),
        ipaddress.ip_network("fd00::/8"),
    ]
    monkeypatch.delenv("LEUKOLENS_REVIEWER_HEADER")
    monkeypatch.setenv("LEUKOLENS_REVIEWER_KEYS", '{"Dr Alice": "k1", "Dr Bob": "k2"}')
    keys = Settings().reviewer_keys
    assert {name: key.get_secret_value() for name, key in keys.items()} == {
        "Dr Alice": "k1",
        "Dr Bob": "k2",
    }
    assert "k1" not in repr(Settings())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"reviewer_header": "X-User", "reviewer_keys": {"a": "k"}, "trusted_proxies": ["::1"]},
            "not both",
        ),
        ({"reviewer_header": "X-User"}, "LEUKOLENS_TRUSTED_PROXIES"),
        ({"reviewer_header": "X User", "trusted_proxies": ["::1"]}, "header name"),
        ({"trusted_proxies": ["10.0.0.1/8"]}, "network"),  # host bits: a typo, not a network
        ({"reviewer_keys": {"a": "same", "b": "same"}}, "differ"),
        ({"reviewer_keys": {"a": "k"}, "api_key": "k"}, "LEUKOLENS_API_KEY"),
        ({"reviewer_keys": {" ": "k"}}, "blank"),
        ({"reviewer_keys": {"Doe, Jane": "k"}}, "comma"),
        ({"reviewer_keys": {"Dr\u200bA": "k"}}, "control"),
        ({"reviewer_keys": {" Dr A": "k"}}, "surrounding spaces"),
        ({"records_in_memory": True, "database_url": "postgresql://x/y"}, "set one"),
        ({"records_retention_days": 7}, "30"),
        ({"sample_id_pattern": "[unclosed"}, "sample id pattern"),
    ],
)
def test_an_unclear_identity_or_record_setting_stops_start_up(changes, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**changes)


def test_records_are_kept_a_year_and_ids_are_lab_numbers_by_default():
    from app.core.sample_ids import DEFAULT_SAMPLE_ID_PATTERN

    settings = Settings()
    assert settings.retention_days == 365
    assert settings.sample_id_pattern == DEFAULT_SAMPLE_ID_PATTERN
    assert (settings.reviewer_header, settings.reviewer_keys) == (None, {})


def test_records_live_in_a_database_unless_memory_is_asked_for(tmp_path):
    """With the audit off, the records used to go to memory, unasked."""
    path = tmp_path / "audit.sqlite3"
    assert Settings(audit_log=False, audit_log_path=path).records_location == path
    url = "postgresql+psycopg://app@db/leukolens"
    assert Settings(audit_log=False, database_url=url).records_location == url
    assert Settings(records_in_memory=True).records_location == ":memory:"


@pytest.mark.parametrize(
    ("environment", "days", "deprecated"),
    [
        ({}, 365, []),
        ({"LEUKOLENS_RETENTION_DAYS": "90"}, 90, []),
        # the two it replaces, as deploy/kubernetes/configmap.yaml set them: the longer wins
        (
            {"LEUKOLENS_RECORDS_RETENTION_DAYS": "90", "LEUKOLENS_AUDIT_RETENTION_DAYS": "400"},
            400,
            ["LEUKOLENS_AUDIT_RETENTION_DAYS", "LEUKOLENS_RECORDS_RETENTION_DAYS"],
        ),
        # one set alone: the other counts as its old default, so nothing goes sooner than it did
        ({"LEUKOLENS_AUDIT_RETENTION_DAYS": "7"}, 365, ["LEUKOLENS_AUDIT_RETENTION_DAYS"]),
        ({"LEUKOLENS_RECORDS_RETENTION_DAYS": "60"}, 365, ["LEUKOLENS_RECORDS_RETENTION_DAYS"]),
        (
            {"LEUKOLENS_RECORDS_RETENTION_DAYS": "500", "LEUKOLENS_AUDIT_RETENTION_DAYS": "7"},
            500,
            ["LEUKOLENS_AUDIT_RETENTION_DAYS", "LEUKOLENS_RECORDS_RETENTION_DAYS"],
        ),
        (
            {"LEUKOLENS_RETENTION_DAYS": "60", "LEUKOLENS_RECORDS_RETENTION_DAYS": "90"},
            60,
            ["LEUKOLENS_RECORDS_RETENTION_DAYS"],
        ),
    ],
)
def test_one_retention_and_the_two_it_replaces_still_read(
    monkeypatch, environment, days, deprecated
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.retention_days == days
    assert settings.deprecated_settings == deprecated
