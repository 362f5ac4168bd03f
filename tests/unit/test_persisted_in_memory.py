"""The fast lane's view of persisted queries: what `resolve` would answer, from memory alone."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from graph.errors import AssayGraphQLError
from graph.protection.persisted import PersistedQueries, PersistedQueryPolicy, document_hash
from tests.unit.fakes import FakeOperations

SEEN, TRUSTED, STORED, NEW = "{ a }", "{ b }", "{ c }", "{ d }"


def extensions(document: str | None) -> dict[str, Any] | None:
    if document is None:
        return None
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


async def persisted(policy: PersistedQueryPolicy) -> PersistedQueries:
    """SEEN ran here before; TRUSTED is trusted and ran here; STORED is only in the store."""
    store = FakeOperations()
    queries = PersistedQueries(store, policy)
    for document in (SEEN, TRUSTED, STORED):
        await store.put(document_hash(document), document, trusted=document == TRUSTED)
    for document in (SEEN, TRUSTED):
        await queries.remember(document_hash(document), document, uuid.uuid4())
    await queries.resolve(None, extensions(TRUSTED), is_admin=False)  # this process saw it trusted
    return queries


POLICIES = [
    PersistedQueryPolicy(),
    PersistedQueryPolicy(only_trusted=True),
    PersistedQueryPolicy(only_trusted=True, allow_admin_arbitrary=True),
]
DOCUMENTS = [None, SEEN, TRUSTED, STORED, NEW]


@pytest.mark.parametrize("policy", POLICIES, ids=["apq", "trusted", "trusted+admins"])
async def test_in_memory_answers_only_what_resolve_answers_with_nothing_to_remember(
    policy: PersistedQueryPolicy,
) -> None:
    answered = 0
    for query, hashed, is_admin in itertools.product(DOCUMENTS, DOCUMENTS, (False, True)):
        queries = await persisted(policy)
        quick = queries.resolve_in_memory(query, extensions(hashed), is_admin=is_admin)
        try:
            resolved = await queries.resolve(query, extensions(hashed), is_admin=is_admin)
        except AssayGraphQLError:
            assert quick is None, (query, hashed, is_admin)
            continue
        if quick is not None:
            answered += 1
            assert (resolved.document, resolved.sha256) == (quick, None), (query, hashed)
    assert answered >= 4


async def test_malformed_extensions_are_left_to_resolve() -> None:
    queries = await persisted(PersistedQueryPolicy())
    bad = {"persistedQuery": {"version": 2, "sha256Hash": "x"}}
    assert queries.resolve_in_memory(SEEN, bad, is_admin=False) is None
