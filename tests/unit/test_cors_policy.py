"""The CORS policy from ASSAY_CORS_ORIGINS (HTTP and the WebSocket Origin check)."""

from __future__ import annotations

import pytest

from graph.transport.cors import CorsPolicy
from server.settings import Environment, Settings, SettingsError, load_settings


def test_development_allows_local_origins_on_any_port_by_default() -> None:
    policy = CorsPolicy.from_setting("", local_by_default=True)
    assert policy.allows("http://localhost:5173")
    assert policy.allows("http://127.0.0.1:3000")
    assert policy.allows("https://localhost")
    assert not policy.allows("http://localhost.evil.example")
    assert not policy.allows("https://app.example.com")


def test_production_allows_no_origin_by_default() -> None:
    policy = CorsPolicy.from_setting("", local_by_default=False)
    assert not policy.allows("http://localhost:5173")


def test_listed_origins_are_exact() -> None:
    policy = CorsPolicy.from_setting(
        "https://app.example.com, https://admin.example.com/", local_by_default=True
    )
    assert policy.allows("https://app.example.com")
    assert policy.allows("https://admin.example.com")
    assert not policy.allows("https://app.example.com:8443")
    assert not policy.allows("http://localhost:5173")


@pytest.mark.parametrize("environment", ["production", "development"])
def test_wildcard_is_refused_in_every_environment(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    # A page on any site could otherwise drive a developer's local server (and GraphiQL's
    # demo token is one fetch away): the README promises `*` is refused, not only in production.
    monkeypatch.setenv("ASSAY_ENVIRONMENT", environment)
    monkeypatch.setenv("ASSAY_CORS_ORIGINS", "*")
    with pytest.raises(SettingsError, match="ASSAY_CORS_ORIGINS"):
        load_settings()


def test_a_malformed_origin_is_refused() -> None:
    with pytest.raises(ValueError, match="no origin"):
        Settings(cors_origins="app.example.com", environment=Environment.DEVELOPMENT)
