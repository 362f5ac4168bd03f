"""Apps built by server.bootstrap.build_app itself, for tests of the production wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette

from server.bootstrap import build_app
from server.settings import Settings

BASE_URL = "http://testserver"


def variant(settings: Settings, **overrides: Any) -> Settings:
    """The session's settings (same data directory, so the same token issuer) with overrides;
    no sign-in cache and each process's own rate-limit buckets unless asked (see
    conftest._settings)."""
    overrides.setdefault("sign_in_cache_seconds", 0)
    overrides.setdefault("run_workers", False)
    overrides.setdefault("rate_limit_store", "process")  # see conftest._settings
    return Settings(data_dir=settings.data_dir, public_url=BASE_URL, **overrides)


async def running_app(
    settings: Settings, postgres_url: str, **overrides: Any
) -> AsyncIterator[Starlette]:
    """build_app's app with its lifespan running (ASGITransport sends no lifespan events)."""
    app = build_app(variant(settings, **overrides), postgres_url)
    async with app.router.lifespan_context(app):
        yield app
