"""Settings from the environment: errors name the variable; database secrets assemble a URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, load_settings

VARIABLES = (
    "DATABASE_URL",
    "ASSAY_DATABASE_URL",
    "ASSAY_DATABASE_SECRET",
    "ASSAY_PORT",
    "ASSAY_COGNITO_REGION",
    "ASSAY_COGNITO_USER_POOL_ID",
    "ASSAY_COGNITO_APP_CLIENT_ID",
    "ASSAY_PUBLIC_URL",
    "ASSAY_LOG_LEVEL",
    "ASSAY_ENVIRONMENT",
    "ASSAY_RATE_LIMIT_STORE",
    "ASSAY_RATE_LIMIT_LEASE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path))


def test_defaults_load(tmp_path: Path) -> None:
    settings = load_settings()

    assert settings.port == 8000
    assert settings.data_dir == tmp_path
    assert settings.resolved_database_url() is None
    assert settings.uses_cognito is False


@pytest.mark.parametrize("port", ["eighty", "0", "70000"])
def test_bad_port_names_assay_port(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("ASSAY_PORT", port)

    with pytest.raises(SettingsError, match="ASSAY_PORT"):
        load_settings()


def test_partial_cognito_settings_name_the_missing_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_COGNITO_REGION", "eu-west-1")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    message = str(raised.value)
    assert "ASSAY_COGNITO_USER_POOL_ID" in message
    assert "ASSAY_COGNITO_APP_CLIENT_ID" in message
    assert "missing ASSAY_COGNITO_REGION" not in message


def test_complete_cognito_settings_use_cognito(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_COGNITO_REGION", "eu-west-1")
    monkeypatch.setenv("ASSAY_COGNITO_USER_POOL_ID", "eu-west-1_abc")
    monkeypatch.setenv("ASSAY_COGNITO_APP_CLIENT_ID", "client")

    assert load_settings().uses_cognito is True


def test_database_secret_assembles_url_with_quoted_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = {
        "username": "assay",
        "password": "p@ss:w/rd%?#",
        "host": "db.internal",
        "port": 6543,
        "dbname": "prod",
    }
    monkeypatch.setenv("ASSAY_DATABASE_SECRET", json.dumps(secret))

    url = load_settings().resolved_database_url()

    assert url == "postgresql://assay:p%40ss%3Aw%2Frd%25%3F%23@db.internal:6543/prod"


def test_database_url_wins_over_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/d")
    monkeypatch.setenv("ASSAY_DATABASE_SECRET", "{not json")

    assert load_settings().resolved_database_url() == "postgresql://u:p@h/d"


@pytest.mark.parametrize(
    "secret",
    ["{not json", json.dumps({"username": "u", "host": "h"}), json.dumps(["a"]), "null"],
)
def test_bad_database_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("ASSAY_DATABASE_SECRET", secret)

    with pytest.raises(SettingsError, match="ASSAY_DATABASE_SECRET"):
        load_settings().resolved_database_url()


def test_bad_public_url_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_PUBLIC_URL", "example.com")

    with pytest.raises(SettingsError, match="ASSAY_PUBLIC_URL"):
        load_settings()


def test_keyword_construction_strips_public_url_slash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_url="https://assay.example.com/")

    assert settings.base_url == "https://assay.example.com"


@pytest.mark.parametrize(
    "store", ["database", "process", "redis://cache:6379/0", "rediss://:token@cache.example.com"]
)
def test_rate_limit_stores_that_load(monkeypatch: pytest.MonkeyPatch, store: str) -> None:
    monkeypatch.setenv("ASSAY_RATE_LIMIT_STORE", store)

    assert load_settings().rate_limit_store == store


@pytest.mark.parametrize("store", ["memcached://cache:11211", "redis://", "postgres"])
def test_a_bad_rate_limit_store_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    monkeypatch.setenv("ASSAY_RATE_LIMIT_STORE", store)

    with pytest.raises(SettingsError, match=r"ASSAY_RATE_LIMIT_STORE: .*rediss://"):
        load_settings()


def test_production_refuses_a_rate_limit_store_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSAY_RATE_LIMIT_STORE", "redis://cache:6379/0")

    with pytest.raises(SettingsError, match="TLS in transit: use rediss://"):
        load_settings()


def test_the_store_label_for_logs_never_shows_the_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rate_limit_store="rediss://:hunter2@cache.example.com")

    assert settings.rate_limit_store_label == "rediss://cache.example.com:6379"


@pytest.mark.parametrize("lease", ["0", "0.9", "much"])
def test_a_bad_lease_names_the_setting(monkeypatch: pytest.MonkeyPatch, lease: str) -> None:
    monkeypatch.setenv("ASSAY_RATE_LIMIT_LEASE", lease)

    with pytest.raises(SettingsError, match="ASSAY_RATE_LIMIT_LEASE"):
        load_settings()
