"""API keys recently found unknown, remembered briefly so a flood of one reaches the
database once. Only "no such key" is remembered: a key's secret exists only once it is made,
so a digest unknown a moment ago is not about to become a valid key."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Short: long enough that a flood of one key costs one lookup per this many seconds.
UNKNOWN_KEY_SECONDS = 30.0
MAX_UNKNOWN_KEYS = 10_000


class UnknownKeys:
    """Digests of API keys that matched nothing, each until it expires; bounded (LRU)."""

    def __init__(
        self,
        ttl_seconds: float = UNKNOWN_KEY_SECONDS,
        max_entries: int = MAX_UNKNOWN_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def __contains__(self, digest: bytes) -> bool:
        until = self._until.get(digest)
        if until is None:
            return False
        if until <= self.clock():
            del self._until[digest]
            return False
        return True

    def add(self, digest: bytes) -> None:
        self._until[digest] = self.clock() + self.ttl
        self._until.move_to_end(digest)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)
