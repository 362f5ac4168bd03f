"""Fixtures for in-process GraphQL tests: the real app over ASGI, tokens, models, a query helper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from auth.local_issuer import LocalIssuer
from domain.models import ModelDefinition
from domain.services import owned
from graph.ids import to_global_id
from integrations.models.directory import ModelDirectory
from persistence.unit_of_work import SqlUnitOfWork
from server.bootstrap import (
    build_app,
    local_issuer,
)
from server.settings import Settings
from telemetry import metrics

BASE_URL = "http://testserver"
IRIS_INPUT = {
    "sepal_length_cm": 5.1,
    "sepal_width_cm": 3.5,
    "petal_length_cm": 1.4,
    "petal_width_cm": 0.2,
}

JSONDict = dict[str, Any]


class TokenFactory(Protocol):
    def __call__(
        self,
        email: str,
        groups: Sequence[str] = (),
        *,
        name: str | None = None,
        subject: str | None = None,
    ) -> str: ...


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONDict:
    """POST one operation to /graphql and return the decoded JSON body."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
    )
    body: JSONDict = response.json()
    return body


def error_codes(body: JSONDict) -> list[str]:
    return [str(e["extensions"]["code"]) for e in body.get("errors", [])]


def only_error(body: JSONDict) -> JSONDict:
    """The single error in a response body (fails the test when there is not exactly one)."""
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    error: JSONDict = errors[0]
    return error


def local_path(url: str) -> str:
    """Path and query of an absolute URL, to send through the in-process client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class StatementCounter:
    """Counts the SQL statements of the `app` fixture's engine, and only those."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        # Only statements made for a request: the app's background loops (event listener,
        # metrics sampler) use the same engine at times no test controls.
        if metrics.REQUEST_STATEMENTS.get() is not None:
            self.count += 1


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    # No sign-in cache unless a test asks: the `db` fixture empties the users table between
    # tests, which gives a subject a new user id (no deployment does that), while a token
    # issued in the same second is the same text and would sign in from the cache.
    overrides.setdefault("sign_in_cache_seconds", 0)
    # Each process's own buckets unless a test asks: the session's many apps share one
    # database, and shared buckets would carry one test's spending into the next.
    overrides.setdefault("rate_limit_store", "process")
    return Settings(data_dir=data_dir, run_workers=False, public_url=BASE_URL, **overrides)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _settings(tmp_path_factory.mktemp("assay-data"))


@pytest.fixture(scope="session")
def model_definitions(settings: Settings) -> list[ModelDefinition]:
    """The default models' definitions, built once per session into the data directory."""
    return ModelDirectory(settings.models_path).definitions()


async def _running(app: Starlette) -> AsyncIterator[Starlette]:
    # ASGITransport does not send lifespan events; run them so shutdown disposes the engine.
    lifespan = cast(
        "Callable[[Starlette], AbstractAsyncContextManager[None]]", app.router.lifespan_context
    )
    async with lifespan(app):
        yield app


@pytest.fixture(scope="session")
def app_statements() -> StatementCounter:
    return StatementCounter()


@pytest.fixture(scope="session")
async def app(
    settings: Settings, postgres_url: str, app_statements: StatementCounter
) -> AsyncIterator[Starlette]:
    """The composition root's app, counting its SQL statements privately as well."""
    app = build_app(settings, postgres_url, on_statement=app_statements)
    async for running in _running(app):
        yield running


@pytest.fixture(scope="session")
async def quick_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    """server.bootstrap.build_app's own app, with runInference giving up after 0.5 s."""
    variant = _settings(settings.data_dir, run_inference_timeout_seconds=0.5)
    async for running in _running(build_app(variant, postgres_url)):
        yield running


@pytest.fixture
async def client(app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on an empty database."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def quick_client(quick_app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=quick_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture(scope="session")
def issuer(settings: Settings) -> LocalIssuer:
    return local_issuer(settings)


@pytest.fixture(scope="session")
def token(issuer: LocalIssuer) -> TokenFactory:
    """Tokens whose subject defaults to `sub-<email>`, as tests.factories.make_user sets it."""

    def issue(
        email: str,
        groups: Sequence[str] = (),
        *,
        name: str | None = None,
        subject: str | None = None,
    ) -> str:
        return issuer.issue(
            email=email,
            name=name if name is not None else email.split("@")[0],
            groups=list(groups),
            subject=subject or f"sub-{email}",
        )

    return issue


@pytest.fixture
async def default_models(
    db: AsyncEngine, model_definitions: list[ModelDefinition]
) -> dict[str, str]:
    """Register the default models on the emptied database; model name -> global id."""
    registered = await owned.register_models(SqlUnitOfWork(db), model_definitions)
    return {m.name: to_global_id("Model", m.id) for m in registered}


# The fast lanes' differential pair (tests/integration/lanes.py), offered to every module.
from tests.integration.lanes import apps, full_app, lane_app  # noqa: E402, F401
