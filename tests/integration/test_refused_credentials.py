"""A refused credential is not free: it costs its address rate-limit points, and a flood of
one unknown API key reaches the database once (unknown keys are remembered briefly)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from server.bootstrap import build_app
from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, variant
from tests.integration.conftest import StatementCounter, TokenFactory, error_codes

TYPENAME = {"query": "{ __typename }"}
BURST = 1_000  # ten refused credentials' worth, and nothing comes back during a test
REQUESTS = 30


@pytest.fixture(scope="module")
async def counted(
    settings: Settings, postgres_url: str
) -> AsyncIterator[tuple[Starlette, StatementCounter]]:
    statements = StatementCounter()
    tight = variant(settings, rate_limit_burst=BURST, rate_limit_points_per_second=0.001)
    app = build_app(tight, postgres_url, on_statement=statements)
    async with app.router.lifespan_context(app):
        yield app, statements


async def _codes(
    counted: tuple[Starlette, StatementCounter], address: str, bearer: str, count: int
) -> tuple[list[str], int]:
    """The first error code of each of `count` requests, and the SQL statements they made."""
    app, statements = counted
    transport = httpx.ASGITransport(app=app, client=(address, 1234))
    codes = []
    before = statements.count
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for _ in range(count):
            response = await client.post(
                "/graphql", json=TYPENAME, headers={"Authorization": f"Bearer {bearer}"}
            )
            codes.append((error_codes(response.json()) or ["OK"])[0])
    return codes, statements.count - before


def _random_key() -> str:
    return "assay_sk_" + secrets.token_urlsafe(32)[:43]


async def test_a_flood_of_one_unknown_key_looks_it_up_once_and_is_rate_limited(
    counted: tuple[Starlette, StatementCounter], db: AsyncEngine
) -> None:
    codes, statements = await _codes(counted, "198.51.100.1", _random_key(), REQUESTS)
    assert statements <= 1
    assert codes[0] != "RATE_LIMITED"
    assert codes[-1] == "RATE_LIMITED", codes
    assert codes.index("RATE_LIMITED") < REQUESTS // 2, "refused keys cost more than nothing"


async def test_a_malformed_key_is_refused_without_a_lookup(
    counted: tuple[Starlette, StatementCounter], db: AsyncEngine
) -> None:
    codes, statements = await _codes(counted, "198.51.100.2", "assay_sk_short", 3)
    assert statements == 0
    assert "RATE_LIMITED" not in codes


async def test_a_token_that_fails_verification_costs_its_address_too(
    counted: tuple[Starlette, StatementCounter], db: AsyncEngine
) -> None:
    codes, _ = await _codes(counted, "198.51.100.3", "not.a.token", REQUESTS)
    assert codes[0] != "RATE_LIMITED"
    assert codes[-1] == "RATE_LIMITED", codes


async def test_a_signed_in_user_behind_the_refused_address_keeps_their_own_budget(
    counted: tuple[Starlette, StatementCounter], db: AsyncEngine, token: TokenFactory
) -> None:
    await _codes(counted, "198.51.100.4", "not.a.token", REQUESTS)
    codes, _ = await _codes(counted, "198.51.100.4", token("nat@example.com"), 3)
    assert codes == ["OK"] * 3
