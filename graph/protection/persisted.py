"""Automatic persisted queries (Apollo's protocol) and the trusted-documents mode.

A request names its document by `extensions.persistedQuery = {version: 1, sha256Hash}`; the
first time, the client sends the document along, and the server remembers it (in a bounded
in-process LRU and in the database, so every process knows it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    Node,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    visit,
)

from domain.ports import PersistedOperations
from graph.errors import AssayGraphQLError
from graph.lru import LruCache

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
ONLY_TRUSTED = "only trusted persisted operations are accepted"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def document_hash(document: str) -> str:
    """The SHA-256 of a document's UTF-8 text, as lowercase hex (the APQ key)."""
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class PersistedQueryPolicy:
    only_trusted: bool = False  # refuse every document that was not registered as trusted
    allow_admin_arbitrary: bool = False  # ... except from administrators
    cache_size: int = 1000
    # Automatic persisted queries a signed-in caller may keep registered; beyond it, that
    # caller's least recently used ones are deleted. Anonymous callers register none.
    quota_per_caller: int = 200


@dataclass(frozen=True)
class Resolved:
    """The document to execute; `sha256` is set when it should be remembered once it ran."""

    document: str | None
    sha256: str | None = None


def _bad_input(message: str) -> AssayGraphQLError:
    return AssayGraphQLError(message, "BAD_USER_INPUT")


def requested_hash(extensions: Mapping[str, object] | None) -> str | None:
    """The hash a request names, or None; BAD_USER_INPUT when the extension is malformed."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, Mapping) or persisted.get("version") != 1:
        raise _bad_input("extensions.persistedQuery must be {version: 1, sha256Hash: ...}")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
        raise _bad_input("extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits")
    return sha256.lower()


class PersistedQueries:
    def __init__(self, store: PersistedOperations | None, policy: PersistedQueryPolicy) -> None:
        self.store = store
        self.policy = policy
        self._documents: LruCache[str, str] = LruCache(policy.cache_size)
        self._trusted: LruCache[str, bool] = LruCache(policy.cache_size)

    async def resolve(
        self,
        query: str | None,
        extensions: Mapping[str, object] | None,
        *,
        is_admin: bool,
        charge: Callable[[], Awaitable[None]] | None = None,
    ) -> Resolved:
        """The document a request means; raises AssayGraphQLError with the contract's code.

        `charge` is called before each lookup this process cannot answer from memory (a
        database statement, often for a hash nobody registered): it raises to refuse."""
        sha256 = requested_hash(extensions)
        if sha256 is not None and query is not None and document_hash(query) != sha256:
            raise _bad_input("the query's SHA-256 does not match extensions.persistedQuery")
        if self.policy.only_trusted and not (is_admin and self.policy.allow_admin_arbitrary):
            return await self._trusted_document(query, sha256, charge)
        if sha256 is None:
            return Resolved(query)
        if query is not None:
            return Resolved(query, None if self._documents.get(sha256) else sha256)
        document = await self._lookup(sha256, charge)
        if document is None:
            raise AssayGraphQLError("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
        return Resolved(document)

    def resolve_in_memory(
        self, query: str | None, extensions: Mapping[str, object] | None, *, is_admin: bool
    ) -> str | None:
        """What `resolve` would answer from this process's memory alone, with nothing to
        remember: the document, or None when resolve would ask the store, refuse, or remember
        (the fast lane then hands the request on to the full pipeline)."""
        try:
            sha256 = requested_hash(extensions)
        except AssayGraphQLError:
            return None
        if sha256 is not None and query is not None and document_hash(query) != sha256:
            return None  # a mismatch, for resolve to refuse
        if self.policy.only_trusted and not (is_admin and self.policy.allow_admin_arbitrary):
            if sha256 is None and query is not None:
                sha256 = document_hash(query)
            if sha256 is None or not self._trusted.get(sha256):
                return None
            return query if query is not None else self._documents.get(sha256)
        if sha256 is None:
            return query
        if query is not None:
            return query if self._documents.get(sha256) else None  # else: to remember first
        return self._documents.get(sha256)

    async def remember(self, sha256: str, document: str, registered_by: UUID | None) -> None:
        """Keep a document that ran (only those: garbage is not worth storing), registered by
        a signed-in caller (anonymous ones could fill the store)."""
        if registered_by is None:
            return
        self._documents.put(sha256, document)
        if self.store is not None:
            await self.store.put(
                sha256,
                document,
                registered_by=registered_by,
                quota=self.policy.quota_per_caller,
            )

    async def _lookup(
        self, sha256: str, charge: Callable[[], Awaitable[None]] | None
    ) -> str | None:
        document = self._documents.get(sha256)
        if document is None and self.store is not None:
            if charge is not None:
                await charge()
            document = await self.store.get(sha256)
            if document is not None:
                self._documents.put(sha256, document)
        return document

    async def _trusted_document(
        self, query: str | None, sha256: str | None, charge: Callable[[], Awaitable[None]] | None
    ) -> Resolved:
        if sha256 is None and query is not None:
            sha256 = document_hash(query)
        if sha256 is None or not await self._is_trusted(sha256, charge):
            raise AssayGraphQLError(ONLY_TRUSTED, "FORBIDDEN")
        document = query if query is not None else await self._lookup(sha256, charge)
        if document is None:
            raise AssayGraphQLError("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
        return Resolved(document)

    async def _is_trusted(self, sha256: str, charge: Callable[[], Awaitable[None]] | None) -> bool:
        # Only "trusted" is cached: a document registered as trusted later must not be
        # refused because this process once saw it untrusted.
        if self._trusted.get(sha256):
            return True
        if self.store is not None and charge is not None:
            await charge()
        if self.store is None or not await self.store.is_trusted(sha256):
            return False
        self._trusted.put(sha256, True)
        return True


@dataclass(frozen=True)
class TrustedDocument:
    operation_name: str | None
    document: str

    @property
    def sha256(self) -> str:
        return document_hash(self.document)


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: object) -> None:
        self.names.add(node.name.value)


def _fragments_used(node: Node, fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Names of the fragments `node` spreads, directly or through other fragments."""
    seen: list[str] = []
    pending = [node]
    while pending:
        spreads = _Spreads()
        visit(pending.pop(), spreads)
        for name in sorted(spreads.names - set(seen)):
            seen.append(name)
            if name in fragments:
                pending.append(fragments[name])
    return seen


def trusted_documents(text: str) -> list[TrustedDocument]:
    """The documents a file registers: the file itself when it holds one operation, else one
    printed document per operation with the fragments it uses. Raises GraphQLError."""
    document = parse(text)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise GraphQLError("the file holds no operation")
    if len(operations) == 1:
        name = operations[0].name
        return [TrustedDocument(name.value if name else None, text)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found = []
    for operation in operations:
        if operation.name is None:
            raise GraphQLError("every operation of a file with several must have a name")
        used = [fragments[n] for n in _fragments_used(operation, fragments) if n in fragments]
        printed = print_ast(DocumentNode(definitions=(operation, *used)))
        found.append(TrustedDocument(operation.name.value, printed))
    return found
