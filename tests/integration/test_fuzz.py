"""Schema-driven fuzzing: generated queries and mutations never make the server fail or leak.

HYPOTHESIS_PROFILE=long runs thousands of examples instead of the default few dozen.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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

# Hostile values: NUL, lone surrogates (refused by the JSON body parser, and by the hygiene
# rule where they get through, e.g. as GraphQL escapes), numbers past 64 bits, forged cursors.
NUL_TEXT = st.tuples(st.text(max_size=10), st.text(max_size=10)).map(lambda p: f"{p[0]}\x00{p[1]}")
LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF).map(lambda c: f"a{c}")
HUGE_INTEGERS = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1))
HUGE_FLOATS = st.sampled_from([1e308, -1e308, 1.7976931348623157e308])


def _forged_cursor(moment: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{ident}".encode()).decode()


FORGED_CURSORS = st.one_of(
    st.builds(
        _forged_cursor,
        st.datetimes(timezones=st.timezones()) | st.datetimes(),
        st.uuids(),
    ),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]).map(
        lambda moment: _forged_cursor(datetime.fromisoformat(moment), uuid.uuid4())
    ),
    st.binary(max_size=60).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
)
HOSTILE_TEXT = st.one_of(NUL_TEXT, LONE_SURROGATES, FORGED_CURSORS, st.text(min_size=3000))

JSON_VALUES = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
    HUGE_INTEGERS.map(nodes.Int),
    HUGE_FLOATS.map(nodes.Float),
    st.text(max_size=30).map(nodes.String),
    NUL_TEXT.map(nodes.String),
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


HOSTILE_OPERATIONS = [
    ("mutation($v: String) { updateViewer(input: {name: $v}) { id } }", "v"),
    ("mutation($v: String) { updateViewer(input: {language: $v}) { id } }", "v"),
    ("query($v: String) { users(filter: {emailContains: $v}) { totalCount } }", "v"),
    ("query($v: String) { submissions(after: $v) { totalCount } }", "v"),
    ("query($v: String) { viewer { assets(after: $v) { totalCount } } }", "v"),
    ("query($v: ID!) { node(id: $v) { id } }", "v"),
    ("query($v: [ID!]!) { nodes(ids: [$v]) { id } }", "v"),
    (
        "mutation($v: String!) { requestAssetUpload(input: "
        '{fileName: $v, contentType: "text/plain", sizeBytes: 3}) { uploadUrl } }',
        "v",
    ),
    (
        "mutation($v: String) { createWebhookEndpoint(input: "
        '{url: "https://example.com/h", events: [ASSET_DELETED], description: $v}) '
        "{ secret } }",
        "v",
    ),
    (
        'mutation($v: String) { createSubmission(input: {modelId: "TW9kZWw6MA", '
        "input: {}, idempotencyKey: $v}) { submission { id } } }",
        "v",
    ),
    (
        'mutation($v: JSON!) { createSubmission(input: {modelId: "TW9kZWw6MA", input: $v}) '
        "{ submission { id } } }",
        "v",
    ),
]
HOSTILE_JSON = st.recursive(
    st.one_of(
        HOSTILE_TEXT, HUGE_INTEGERS, HUGE_FLOATS, st.integers(), st.text(max_size=5), st.none()
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)


@given(operation=st.sampled_from(HOSTILE_OPERATIONS), value=HOSTILE_TEXT | HOSTILE_JSON)
async def test_hostile_values_never_fail_or_leak(
    client: httpx.AsyncClient,
    token: TokenFactory,
    operation: tuple[str, str],
    value: object,
) -> None:
    query, name = operation
    bearer = token("hostile@example.com", ["admin"])
    # json, not orjson: it writes integers past 64 bits and escapes lone surrogates.
    body = json.dumps({"query": query, "variables": {name: value}})

    response = await client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )

    assert_handled(response, f"{query} with {value!r}")


async def test_server_still_answers_after_fuzzing(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    body = await gql(client, "{ viewer { id } }", token=token("after-fuzz@example.com"))

    assert body["data"]["viewer"]["id"]
