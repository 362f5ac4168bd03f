"""Parsed and validated documents, cached by the SHA-256 of their text (bounded LRU)."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from graph.lru import LruCache
from graph.protection.persisted import document_hash

CacheKey = tuple[str, int | None]  # (document hash, the parser's token limit)


class DocumentCache:
    """One per schema: validation results depend on the schema and its validation rules."""

    def __init__(self, maxsize: int) -> None:
        self.documents: LruCache[CacheKey, DocumentNode] = LruCache(maxsize)
        self.validation_errors: LruCache[CacheKey, list[GraphQLError]] = LruCache(maxsize)


class CachedDocuments(SchemaExtension):
    """Parse and validate each distinct document once.

    Must come after QueryProtection, whose on_parse sets the token limit first.
    """

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self.key: CacheKey | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is None:
            key = (document_hash(context.query), context.parse_options.get("max_tokens"))
            document = self.cache.documents.get(key)
            if document is None:
                try:
                    document = parse(context.query, **context.parse_options)
                except GraphQLError:
                    document = None  # Strawberry parses again and reports the error itself
                else:
                    self.cache.documents.put(key, document)
            if document is not None:
                context.graphql_document = document
                self.key = key
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # Errors set already (a subscription that QueryProtection refused) stand.
        decided = context.pre_execution_errors is not None
        if self.key is not None and context.graphql_document is not None and not decided:
            errors = self.cache.validation_errors.get(self.key)
            if errors is None:
                errors = validate_document(
                    context.schema._schema, context.graphql_document, context.validation_rules
                )
                self.cache.validation_errors.put(self.key, errors)
            # Strawberry validates only while pre_execution_errors is None. Keep what another
            # extension refused already (OneOperationOrName), whichever ran first.
            context.pre_execution_errors = [*(context.pre_execution_errors or []), *errors]
        yield
