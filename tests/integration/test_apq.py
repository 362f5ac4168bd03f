"""Automatic persisted queries and trusted documents through the app that build_app wires."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.protection.persisted import document_hash
from persistence.operations import SqlPersistedOperations
from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import JSONDict, TokenFactory, error_codes, only_error


def apq(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


def unique(test: str) -> str:
    """A document no other test has sent (the app's in-process cache outlives each test)."""
    return f"# {test}\n{{ __typename }}"


async def post(
    client: httpx.AsyncClient,
    *,
    query: str | None = None,
    extensions: dict[str, Any] | None = None,
    token: str | None = None,
) -> JSONDict:
    body: dict[str, Any] = {"extensions": extensions} if extensions else {}
    if query is not None:
        body["query"] = query
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json=body, headers=headers)
    decoded: JSONDict = response.json()
    return decoded


async def test_unknown_hash_is_not_found_until_the_client_sends_the_document(
    client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    document = unique("post")
    bearer = token("apq@example.com")
    first = await post(client, extensions=apq(document), token=bearer)
    error = only_error(first)
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["requestId"]
    assert (await post(client, query=document, extensions=apq(document), token=bearer))["data"] == {
        "__typename": "Query"
    }
    assert (await post(client, extensions=apq(document)))["data"] == {"__typename": "Query"}
    stored = SqlPersistedOperations(db)
    assert await stored.get(document_hash(document)) == document
    assert not await stored.is_trusted(document_hash(document))


async def test_persisted_queries_work_over_get(
    client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    document = "query Named($n: String!) { __type(name: $n) { name } }"
    params = {
        "extensions": json.dumps(apq(document)),
        "variables": json.dumps({"n": "Query"}),
        "operationName": "Named",
    }
    missing = await client.get("/graphql", params=params, headers={"Accept": "*/*"})
    assert missing.status_code == 200
    assert error_codes(missing.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    signed_in = {"Authorization": f"Bearer {token('get@example.com')}"}
    sent = await client.get("/graphql", params={**params, "query": document}, headers=signed_in)
    assert sent.json() == {"data": {"__type": {"name": "Query"}}}
    again = await client.get("/graphql", params=params, headers={"Accept": "*/*"})
    assert again.json() == {"data": {"__type": {"name": "Query"}}}


async def test_query_that_does_not_match_its_hash_is_bad_user_input(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    body = await post(client, query="{ __typename }", extensions=apq("{ other }"))
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await SqlPersistedOperations(db).get(document_hash("{ other }")) is None


async def test_invalid_documents_are_not_remembered(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    document = "{ noSuchField }"
    body = await post(client, query=document, extensions=apq(document))
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await SqlPersistedOperations(db).get(document_hash(document)) is None


async def test_a_document_registered_elsewhere_is_found_by_every_process(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    document = unique("elsewhere")
    await SqlPersistedOperations(db).put(document_hash(document), document)
    assert (await post(client, extensions=apq(document)))["data"] == {"__typename": "Query"}


async def test_anonymous_callers_run_documents_but_register_none(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    document = unique("anonymous")

    ran = await post(client, query=document, extensions=apq(document))
    again = await post(client, extensions=apq(document))

    assert ran["data"] == {"__typename": "Query"}
    assert error_codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert await SqlPersistedOperations(db).get(document_hash(document)) is None


async def test_a_callers_least_recently_used_documents_beyond_its_quota_are_deleted(
    db: AsyncEngine,
) -> None:
    store, caller, other = SqlPersistedOperations(db), uuid.uuid4(), uuid.uuid4()
    texts = [unique(f"quota-{n}") for n in range(4)]
    await store.put(document_hash(texts[3]), texts[3], registered_by=other, quota=2)
    for text in texts[:2]:
        await store.put(document_hash(text), text, registered_by=caller, quota=2)
    await store.get(document_hash(texts[0]))  # used: now more recent than texts[1]

    await store.put(document_hash(texts[2]), texts[2], registered_by=caller, quota=2)

    kept = [await store.get(document_hash(text)) for text in texts]
    assert kept == [texts[0], None, texts[2], texts[3]]


@pytest.fixture(scope="module")
async def stingy_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    limits = {"rate_limit_burst": 50, "rate_limit_points_per_second": 0.001}
    async for app in running_app(settings, postgres_url, **limits):
        yield app


async def test_unknown_hash_lookups_are_charged_to_the_rate_limit(
    stingy_app: Starlette, db: AsyncEngine
) -> None:
    transport = httpx.ASGITransport(app=stingy_app, client=("198.51.100.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        codes = [
            error_codes(await post(client, extensions=apq(unique(f"guess-{n}")))) for n in range(8)
        ]

    assert codes[:5] == [["PERSISTED_QUERY_NOT_FOUND"]] * 5  # 10 points each, burst 50
    assert codes[5:] == [["RATE_LIMITED"]] * 3


@pytest.fixture(scope="module")
async def trusted_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    only_trusted = {
        "only_persisted_operations": True,
        "allow_admin_arbitrary_operations": True,
    }
    async for app in running_app(settings, postgres_url, **only_trusted):
        yield app


@pytest.fixture
async def trusted_client(
    trusted_app: Starlette, db: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=trusted_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def test_trusted_mode_refuses_what_was_not_registered_as_trusted(
    trusted_client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    untrusted = unique("untrusted")
    await SqlPersistedOperations(db).put(document_hash(untrusted), untrusted)  # APQ-registered
    bearer = token("tara@example.com")
    for body in (
        await post(trusted_client, query="{ viewer { id } }", token=bearer),
        await post(trusted_client, extensions=apq(untrusted), token=bearer),
        await post(trusted_client, query=untrusted, extensions=apq(untrusted), token=bearer),
    ):
        error = only_error(body)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "only trusted persisted operations are accepted"


async def test_trusted_mode_runs_trusted_documents_by_hash_or_text(
    trusted_client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    document = "query Me { viewer { email } }"
    await SqlPersistedOperations(db).put(document_hash(document), document, trusted=True)
    bearer = token("tess@example.com")
    expected = {"viewer": {"email": "tess@example.com"}}
    assert (await post(trusted_client, extensions=apq(document), token=bearer))["data"] == expected
    assert (await post(trusted_client, query=document, token=bearer))["data"] == expected


async def test_trusted_mode_lets_admins_send_anything_when_allowed(
    trusted_client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    admin = token("ada@example.com", ["admin"])
    body = await post(trusted_client, query="{ viewer { groups } }", token=admin)
    assert body["data"] == {"viewer": {"groups": ["admin"]}}
