"""A bounded cache that drops the least recently used entry first."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from graphql import DocumentNode, OperationDefinitionNode

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `maxsize` entries; the least recently used goes first."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.maxsize <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)


class ByText(Generic[V]):
    """What the pipeline learned of a document text, by (query, operation name) as a request
    sends them; a document with one operation is also found without a name. At most
    `maxsize` keys, the least recently used going first."""

    def __init__(self, maxsize: int) -> None:
        self._known: LruCache[tuple[str, str | None], V] = LruCache(maxsize)

    def __len__(self) -> int:
        return len(self._known)

    def get(self, query: str, operation_name: str | None) -> V | None:
        return self._known.get((query, operation_name))

    def put(self, query: str, operation_name: str | None, document: DocumentNode, value: V) -> None:
        self._known.put((query, operation_name), value)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) == 1:
            self._known.put((query, None), value)
