"""Schema-driven fuzzing: generated queries and mutations never make the server fail or leak.

HYPOTHESIS_PROFILE=long runs thousands of examples instead of the default few dozen.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as profiles
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import TokenFactory, gql

SCHEMA = (Path(__file__).parents[2] / "schema.graphql").read_text()
LEAKS = ("Traceback", "sqlalchemy", "asyncpg", "/work/", 'File "')

profiles.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
profiles.register_profile("long", parent=profiles.get_profile("default"), max_examples=3_000)
profiles.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

JSON_VALUES = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
    st.text(max_size=30).map(nodes.String),
    st.booleans().map(nodes.Boolean),
    st.just(nodes.Object([])),
)
CUSTOM_SCALARS = {
    "JSON": JSON_VALUES,
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
}
OPERATIONS = st.one_of(
    queries(SCHEMA, custom_scalars=CUSTOM_SCALARS),
    mutations(SCHEMA, custom_scalars=CUSTOM_SCALARS),
)


@pytest.fixture(scope="module")
async def fuzzed_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    """The app as server.bootstrap.build_app wires it."""
    async for app in running_app(settings, postgres_url):
        yield app


@pytest.fixture
async def client(fuzzed_app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fuzzed_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def assert_handled(response: httpx.Response, query: str) -> None:
    assert response.status_code < 500, (query, response.text)
    leaked = [leak for leak in LEAKS if leak in response.text]
    assert not leaked, (query, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        codes = [e["extensions"]["code"] for e in response.json().get("errors") or []]
        assert "INTERNAL" not in codes, (query, response.text)


@given(query=OPERATIONS)
async def test_generated_operations_never_fail_or_leak(
    client: httpx.AsyncClient, token: TokenFactory, query: str
) -> None:
    bearer = token("fuzz@example.com", ["admin"])

    response = await client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {bearer}"}
    )

    assert_handled(response, query)


async def test_server_still_answers_after_fuzzing(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    body = await gql(client, "{ viewer { id } }", token=token("after-fuzz@example.com"))

    assert body["data"]["viewer"]["id"]
