"""Shared rate-limit budgets as build_app wires them: two apps (two processes) on one database
give a caller one budget; a store that does not answer degrades limits, never traffic."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.protection.shared_budget import MIN_LEASE
from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import TokenFactory, error_codes, gql, only_error

BURST, LEASE = 60, 0.1  # a lease of 10 points per process (MIN_LEASE)
SHARED = {
    "rate_limit_store": "database",
    "rate_limit_burst": BURST,
    "rate_limit_points_per_second": 0.001,
    "rate_limit_lease": LEASE,
}


async def client_of(
    settings: Settings, postgres_url: str, **overrides: object
) -> AsyncIterator[httpx.AsyncClient]:
    async for app in running_app(settings, postgres_url, **overrides):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


@pytest.fixture
async def first(settings: Settings, postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_of(settings, postgres_url, **SHARED):
        yield http


@pytest.fixture
async def second(settings: Settings, postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_of(settings, postgres_url, **SHARED):
        yield http


async def test_a_caller_alternating_between_two_processes_gets_one_budget(
    first: httpx.AsyncClient, second: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    bearer = token(f"{uuid.uuid4()}@example.com")
    granted = 0
    for turn in range(400):
        body = await gql((first, second)[turn % 2], "{ __typename }", token=bearer)
        if error_codes(body) != ["RATE_LIMITED"]:
            granted += 1
        elif only_error(body)["extensions"]["retryAfterSeconds"] > 1:
            break  # out of budget (a short wait is a lease waiting for its settle)
        await asyncio.sleep(0)  # the settlers run between requests, as they do beside traffic

    # One budget: the burst, plus at most a lease per process (each process alone: 2 x 60).
    assert BURST <= granted <= BURST + 2 * MIN_LEASE, granted


async def test_requests_past_the_lease_wait_for_a_settle_and_only_an_empty_bucket_refuses(
    first: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    bearer = token(f"{uuid.uuid4()}@example.com")

    # Back to back, so the settler has no turn between them: past each lease of 10 points,
    # the request itself has the settle made and waits for it.
    bodies = [await gql(first, "{ __typename }", token=bearer) for _ in range(BURST)]
    refused = await gql(first, "{ __typename }", token=bearer)

    assert [error_codes(body) for body in bodies] == [[]] * BURST
    assert error_codes(refused) == ["RATE_LIMITED"]
    assert only_error(refused)["extensions"]["retryAfterSeconds"] > 100  # 1 point at 0.001/s


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_store_is_a_degradation_in_readyz_and_one_log_line(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    token: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = f"redis://127.0.0.1:{closed_port()}/0"
    bearer = token(f"{uuid.uuid4()}@example.com")
    with caplog.at_level(logging.WARNING, logger="graph.protection.shared_budget"):
        async for http in client_of(settings, postgres_url, rate_limit_store=unreachable):
            for _ in range(3):
                body = await gql(http, "{ __typename }", token=bearer)
                assert body == {"data": {"__typename": "Query"}}
                ready = (await http.get("/readyz")).json()
                for _ in range(100):
                    if ready["degraded"]:
                        break
                    await asyncio.sleep(0.05)
                    ready = (await http.get("/readyz")).json()
            response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert "per process" in response.json()["degraded"]["rateLimitStore"]
    lines = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "redis://127.0.0.1" in lines[0]
