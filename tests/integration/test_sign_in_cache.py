"""Cached sign-ins on build_app's own apps: no statement on a hit, and deactivating a user on
one process refuses that user's next request there, and on another as soon as its listener
hears the notification."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.protection.sign_in import DELIVERY_TIMEOUT_SECONDS
from server.bootstrap import build_app
from server.settings import Settings
from telemetry import metrics
from tests.integration.bootstrapped import BASE_URL, variant
from tests.integration.conftest import StatementCounter, TokenFactory, gql, only_error

DEACTIVATE = "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }"
VIEWER = "{ viewer { id } }"


@dataclass
class Process:
    """One server process's app, as build_app makes it, with its lifespan (the listener)."""

    client: httpx.AsyncClient
    statements: StatementCounter

    async def statements_of(self, query: str, token: str) -> tuple[int, dict[str, object]]:
        before = self.statements.count
        body = await gql(self.client, query, token=token)
        return self.statements.count - before, body


@contextlib.asynccontextmanager
async def process(settings: Settings, postgres_url: str) -> AsyncIterator[Process]:
    counter = StatementCounter()
    app = build_app(variant(settings, sign_in_cache_seconds=60), postgres_url, on_statement=counter)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield Process(client, counter)


def cached_sign_ins() -> float:
    value = metrics.REGISTRY.get_sample_value("assay_sign_ins_total", {"source": "cached"})
    return value or 0.0


async def signed_in_from_cache(proc: Process, token: str) -> None:
    """Sign in until the process answers from its cache (its listener starts in the
    background: until it is caught up, every request reads the user)."""
    for _ in range(100):
        before = cached_sign_ins()
        body = await gql(proc.client, "{ __typename }", token=token)
        assert "errors" not in body, body
        if cached_sign_ins() > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the process never answered from its sign-in cache")


async def refused_once_heard(proc: Process, token: str) -> None:
    """Ask until the process refuses the deactivated caller, for at most as long as the
    deactivating process waits for its own listener (sign_in.DELIVERY_TIMEOUT_SECONDS)."""
    deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT_SECONDS
    while True:
        body = await gql(proc.client, VIEWER, token=token)
        if body.get("errors"):
            assert only_error(body)["extensions"]["code"] == "FORBIDDEN", body
            return
        assert asyncio.get_running_loop().time() < deadline, f"still served: {body}"
        await asyncio.sleep(0.01)


async def test_a_cached_sign_in_sends_no_statement(
    settings: Settings, postgres_url: str, db: AsyncEngine, token: TokenFactory
) -> None:
    async with process(settings, postgres_url) as proc:
        ann = token("ann@example.com")
        await signed_in_from_cache(proc, ann)
        hit, body = await proc.statements_of("{ __typename }", ann)
        assert "errors" not in body
        assert hit == 0
        cached, _ = await proc.statements_of(VIEWER, ann)
        # Another token of hers (same claims, other text): verified, and her row read again.
        again = token("ann@example.com", name="Ann B")
        read, body = await proc.statements_of(VIEWER, again)
        assert "errors" not in body
        assert read == cached + 1


async def test_deactivating_on_one_process_refuses_the_user_there_and_on_another_once_heard(
    settings: Settings, postgres_url: str, db: AsyncEngine, token: TokenFactory
) -> None:
    admin, bob = token("root@example.com", ["admin"]), token("bob@example.com")
    async with (
        process(settings, postgres_url) as first,
        process(settings, postgres_url) as second,
    ):
        viewer = await gql(second.client, VIEWER, token=bob)
        await signed_in_from_cache(second, bob)
        await signed_in_from_cache(first, admin)

        done = await gql(
            first.client, DEACTIVATE, {"id": viewer["data"]["viewer"]["id"]}, token=admin
        )
        assert done == {"data": {"deactivateUser": {"isActive": False}}}

        # The deactivating process answered only once its own listener delivered the
        # revocation, having dropped the entry itself first: its next request is refused.
        refused = only_error(await gql(first.client, VIEWER, token=bob))
        assert refused["extensions"]["code"] == "FORBIDDEN"
        # Another process hears the same notification on its own connection, a moment later
        # or sooner (its backend and its event loop take their turns): until then its cache
        # may still answer; from then on, never. (Asking at once failed now and then on a
        # busy machine: the other listener had not read the notification yet.)
        await refused_once_heard(second, bob)
        for _ in range(3):
            refused = only_error(await gql(second.client, VIEWER, token=bob))
            assert refused["extensions"]["code"] == "FORBIDDEN"


ERASE = "mutation($email: String!) { deleteViewer(input: {confirmEmail: $email}) { deletedId } }"


async def test_an_erased_account_is_not_served_from_any_process_cache(
    settings: Settings, postgres_url: str, db: AsyncEngine, token: TokenFactory
) -> None:
    eve = token("eve@example.com")
    async with (
        process(settings, postgres_url) as first,
        process(settings, postgres_url) as second,
    ):
        before = await gql(second.client, VIEWER, token=eve)
        await signed_in_from_cache(second, eve)
        await signed_in_from_cache(first, eve)

        erased = await gql(first.client, ERASE, {"email": "eve@example.com"}, token=eve)
        assert erased["data"]["deleteViewer"]["deletedId"] == before["data"]["viewer"]["id"]

        # The same identity starts a new, empty account on both processes at once.
        for proc in (first, second):
            after = await gql(proc.client, VIEWER, token=eve)
            assert after.get("data"), after
            assert after["data"]["viewer"]["id"] != before["data"]["viewer"]["id"], proc
