"""Security headers: nosniff and no referrer everywhere, no-store on authenticated answers,
a Content-Security-Policy on GraphiQL, HSTS in production only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from server.settings import Environment, Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import TokenFactory

VIEWER = {"query": "{ viewer { email } }"}


@pytest.fixture(scope="module")
async def production_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    async for app in running_app(settings, postgres_url, environment=Environment.PRODUCTION):
        yield app


def assert_basic_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_authenticated_answers_are_not_stored(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    bearer = token("headers@example.com")
    response = await client.post(
        "/graphql", json=VIEWER, headers={"Authorization": f"Bearer {bearer}"}
    )
    assert response.status_code == 200
    assert_basic_headers(response)
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # development


async def test_every_answer_forbids_sniffing_and_referrers(client: httpx.AsyncClient) -> None:
    for response in [await client.get("/healthz"), await client.post("/graphql", content=b"{")]:
        assert_basic_headers(response)


async def test_graphiql_allows_only_its_own_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


async def test_production_answers_carry_hsts(production_app: Starlette, db: AsyncEngine) -> None:
    transport = httpx.ASGITransport(app=production_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert_basic_headers(response)
