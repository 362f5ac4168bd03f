"""Automatic persisted queries, trusted documents, media types and the document cache, no I/O."""

from __future__ import annotations

import uuid

import pytest
from graphql import GraphQLError

from graph.errors import AssayGraphQLError
from graph.lru import LruCache
from graph.protection.persisted import (
    PERSISTED_QUERY_NOT_FOUND,
    PersistedQueries,
    PersistedQueryPolicy,
    document_hash,
    trusted_documents,
)
from graph.transport.over_http import GRAPHQL_RESPONSE_JSON, JSON, is_request_error, negotiate
from tests.unit.fakes import FakeOperations

VIEWER = "{ viewer { id } }"


def apq(sha256: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


def code_of(error: AssayGraphQLError) -> object:
    return (error.extensions or {})["code"]


async def test_unknown_hash_without_query_is_persisted_query_not_found() -> None:
    queries = PersistedQueries(FakeOperations(), PersistedQueryPolicy())
    with pytest.raises(AssayGraphQLError) as raised:
        await queries.resolve(None, apq(document_hash(VIEWER)), is_admin=False)
    assert code_of(raised.value) == PERSISTED_QUERY_NOT_FOUND
    assert raised.value.message == "PersistedQueryNotFound"


async def test_a_document_that_ran_is_found_by_its_hash_from_the_store() -> None:
    store = FakeOperations()
    sha256 = document_hash(VIEWER)
    first = PersistedQueries(store, PersistedQueryPolicy())
    resolved = await first.resolve(VIEWER, apq(sha256), is_admin=False)
    assert (resolved.document, resolved.sha256) == (VIEWER, sha256)
    await first.remember(sha256, VIEWER, uuid.uuid4())
    other_process = PersistedQueries(store, PersistedQueryPolicy())
    assert (await other_process.resolve(None, apq(sha256), is_admin=False)).document == VIEWER
    await other_process.resolve(None, apq(sha256), is_admin=False)
    assert store.gets == 1  # the second lookup came from the in-process LRU


async def test_query_whose_hash_differs_is_bad_user_input() -> None:
    queries = PersistedQueries(FakeOperations(), PersistedQueryPolicy())
    with pytest.raises(AssayGraphQLError) as raised:
        await queries.resolve(VIEWER, apq("0" * 64), is_admin=False)
    assert code_of(raised.value) == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "xyz"}},
        {"persistedQuery": "0" * 64},
    ],
)
async def test_malformed_persisted_query_extension_is_bad_user_input(
    extensions: dict[str, object],
) -> None:
    queries = PersistedQueries(None, PersistedQueryPolicy())
    with pytest.raises(AssayGraphQLError) as raised:
        await queries.resolve(VIEWER, extensions, is_admin=False)
    assert code_of(raised.value) == "BAD_USER_INPUT"


async def test_plain_queries_pass_through_untouched() -> None:
    queries = PersistedQueries(None, PersistedQueryPolicy())
    resolved = await queries.resolve(VIEWER, None, is_admin=False)
    assert (resolved.document, resolved.sha256) == (VIEWER, None)


async def test_trusted_mode_refuses_untrusted_documents_and_accepts_trusted_ones() -> None:
    store = FakeOperations()
    await store.put(document_hash(VIEWER), VIEWER, trusted=True)
    await store.put(document_hash("{ models { id } }"), "{ models { id } }")
    queries = PersistedQueries(store, PersistedQueryPolicy(only_trusted=True))
    for query, extensions in [("{ models { id } }", None), (None, apq("1" * 64))]:
        with pytest.raises(AssayGraphQLError) as raised:
            await queries.resolve(query, extensions, is_admin=False)
        assert code_of(raised.value) == "FORBIDDEN"
        assert "only trusted persisted operations" in raised.value.message
    by_hash = await queries.resolve(None, apq(document_hash(VIEWER)), is_admin=False)
    assert by_hash.document == VIEWER
    assert (await queries.resolve(VIEWER, None, is_admin=False)).document == VIEWER


async def test_admins_may_send_anything_only_when_allowed() -> None:
    strict = PersistedQueries(FakeOperations(), PersistedQueryPolicy(only_trusted=True))
    with pytest.raises(AssayGraphQLError):
        await strict.resolve(VIEWER, None, is_admin=True)
    lenient = PersistedQueries(
        FakeOperations(), PersistedQueryPolicy(only_trusted=True, allow_admin_arbitrary=True)
    )
    assert (await lenient.resolve(VIEWER, None, is_admin=True)).document == VIEWER
    with pytest.raises(AssayGraphQLError):
        await lenient.resolve(VIEWER, None, is_admin=False)


def test_a_file_with_one_operation_is_registered_as_written() -> None:
    text = "query Me {\n  viewer { id }\n}\n"
    (document,) = trusted_documents(text)
    assert (document.operation_name, document.document) == ("Me", text)
    assert document.sha256 == document_hash(text)


def test_a_file_with_several_operations_gives_one_document_each_with_its_fragments() -> None:
    text = """
    query Me { viewer { ...U } }
    fragment U on User { id ...N }
    fragment N on User { name }
    query Models { models { id } }
    """
    me, models = trusted_documents(text)
    assert me.operation_name == "Me"
    assert "fragment U" in me.document
    assert "fragment N" in me.document
    assert models.operation_name == "Models"
    assert "fragment" not in models.document


def test_a_file_without_operations_is_refused() -> None:
    with pytest.raises(GraphQLError):
        trusted_documents("fragment U on User { id }")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE_JSON};charset=utf-8", GRAPHQL_RESPONSE_JSON),
        ("text/html, */*;q=0.8", JSON),
        ("text/html", None),
        ("application/xml", None),
        ("application/json;q=0", None),
    ],
)
def test_accept_header_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_request_errors_are_those_without_data_and_without_paths() -> None:
    assert is_request_error(None, [GraphQLError("Syntax Error")])
    assert not is_request_error(None, [GraphQLError("boom", path=["viewer"])])
    assert not is_request_error({"viewer": None}, [GraphQLError("x")])
    assert not is_request_error({"viewer": {"id": "1"}}, None)


def test_lru_cache_keeps_the_most_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


async def test_anonymous_callers_register_nothing() -> None:
    store = FakeOperations()
    queries = PersistedQueries(store, PersistedQueryPolicy())

    await queries.remember(document_hash(VIEWER), VIEWER, None)

    assert store.documents == {}
    with pytest.raises(AssayGraphQLError):
        await queries.resolve(None, apq(document_hash(VIEWER)), is_admin=False)


async def test_a_caller_keeps_its_quota_of_most_recently_used_documents() -> None:
    store, caller, other = FakeOperations(), uuid.uuid4(), uuid.uuid4()
    queries = PersistedQueries(store, PersistedQueryPolicy(quota_per_caller=2, cache_size=0))
    texts = [f"{{ viewer {{ id }} }} # {n}" for n in range(3)]
    await queries.remember(document_hash(texts[0]), texts[0], caller)
    await queries.remember(document_hash(texts[1]), texts[1], caller)
    await queries.remember(document_hash("{ models { id } }"), "{ models { id } }", other)
    await queries.resolve(None, apq(document_hash(texts[0])), is_admin=False)  # used again

    await queries.remember(document_hash(texts[2]), texts[2], caller)

    assert set(store.documents.values()) == {texts[0], texts[2], "{ models { id } }"}


async def test_a_lookup_the_process_cannot_answer_from_memory_is_charged_first() -> None:
    charges: list[str] = []

    async def charge() -> None:
        charges.append("lookup")
        if len(charges) > 1:
            raise AssayGraphQLError("rate limit exceeded", "RATE_LIMITED")

    queries = PersistedQueries(FakeOperations(), PersistedQueryPolicy())
    unknown = apq("0" * 64)
    with pytest.raises(AssayGraphQLError) as first:
        await queries.resolve(None, unknown, is_admin=False, charge=charge)
    with pytest.raises(AssayGraphQLError) as second:
        await queries.resolve(None, unknown, is_admin=False, charge=charge)

    assert code_of(first.value) == PERSISTED_QUERY_NOT_FOUND
    assert code_of(second.value) == "RATE_LIMITED"
    assert len(charges) == 2
