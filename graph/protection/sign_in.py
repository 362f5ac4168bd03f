"""Signed-in callers remembered briefly, so that the hot path neither re-verifies a token nor
reads the user again.

An entry is keyed by a digest of the bearer credential (a token today; an API key can be
cached the same way) and lives `ttl` seconds, never past the credential's own expiry. It
names the ids whose revocation ends it: the user's (and, for an API key, the key's own).
Every process drops those entries when its event listener delivers PRINCIPAL_REVOKED, and
the process that revoked drops them at once. Until the listener is connected and caught up,
the cache answers nothing: from the moment a notification arrives until its events are
delivered (a revocation may be among them), and from the moment the listener loses its
connection until it is back and has replayed what it missed (entries are dropped then too).
Meanwhile every request signs in against the database, as without a cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from domain.principal import Principal

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# How long the process that revokes waits for its own listener to hear of the revocation
# (every process is told by the same notification) before it answers anyway.
DELIVERY_TIMEOUT_SECONDS = 2.0
ListenerState = Literal["caught_up", "pending", "disconnected"]


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    expires_at: datetime | None  # the credential's own expiry (closes its sockets)


@dataclass(frozen=True, slots=True)
class _Entry:
    signed_in: SignedIn
    until: datetime
    revoked_by: tuple[UUID, ...]


class SignInCache:
    """Verified principals by credential digest, bounded, dropped by revocation."""

    def __init__(self, ttl_seconds: float, clock: Clock, max_entries: int = 10_000) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock
        self.max_entries = max_entries
        # Bumped by every revocation: a sign-in that read the user before a revocation
        # arrived must not store what it read after it (see put()).
        self.generation = 0
        self.is_connected = False  # the event listener listens (revocations reach us)
        self.is_current = False  # ... and has delivered every event it was told of
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_id: dict[UUID, set[bytes]] = {}
        self._watchers: dict[UUID, set[asyncio.Event]] = {}

    @staticmethod
    def key(credential: str) -> bytes:
        return hashlib.sha256(credential.encode()).digest()

    @property
    def is_trusted(self) -> bool:
        return self.is_connected and self.is_current

    def get(self, credential: str) -> SignedIn | None:
        if not (self.is_connected and self.is_current):
            return None
        key = self.key(credential)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.until <= self.clock():
            self._drop(key)
            return None
        return entry.signed_in

    def put(
        self,
        credential: str,
        signed_in: SignedIn,
        *,
        generation: int,
        revoked_by: Iterable[UUID] = (),
    ) -> None:
        """Remember a sign-in that began at `generation` (self.generation read before the
        database was); skipped when a revocation came in between, or while disconnected."""
        if not self.is_connected or generation != self.generation or self.ttl <= timedelta(0):
            return
        until = self.clock() + self.ttl
        if signed_in.expires_at is not None:
            until = min(until, signed_in.expires_at)
        key = self.key(credential)
        self._drop(key)
        ids = (signed_in.principal.user_id, *revoked_by)
        self._entries[key] = _Entry(signed_in, until, ids)
        for ident in ids:
            self._by_id.setdefault(ident, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def revoke(self, ids: Iterable[UUID], *, from_bus: bool = False) -> int:
        """Forget every entry that names one of these ids; how many were dropped.
        `from_bus`: the event listener delivered the revocation (wakes `revoking`)."""
        self.generation += 1
        ids = set(ids)
        keys = {key for ident in ids for key in self._by_id.get(ident, ())}
        for key in keys:
            self._drop(key)
        for ident in ids if from_bus else ():
            for delivered in self._watchers.pop(ident, ()):
                delivered.set()
        return len(keys)

    def watch(self, ids: Iterable[UUID], delivered: asyncio.Event) -> None:
        for ident in ids:
            self._watchers.setdefault(ident, set()).add(delivered)

    def unwatch(self, ids: Iterable[UUID], delivered: asyncio.Event) -> None:
        for ident in ids:
            watchers = self._watchers.get(ident)
            if watchers is not None:
                watchers.discard(delivered)
                if not watchers:
                    del self._watchers[ident]

    def listener_state(self, state: ListenerState) -> None:
        """What the event listener says (persistence.event_bus.EventListener's on_state)."""
        if state == "disconnected":
            self.generation += 1
            self._entries.clear()
            self._by_id.clear()
        self.is_connected = state != "disconnected"
        self.is_current = state == "caught_up"

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for ident in entry.revoked_by:
            keys = self._by_id.get(ident)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_id[ident]


@contextlib.asynccontextmanager
async def revoking(
    cache: SignInCache | None,
    ids: Sequence[UUID],
    wait_seconds: float = DELIVERY_TIMEOUT_SECONDS,
) -> AsyncIterator[None]:
    """Around a use case that revokes `ids` (and records PRINCIPAL_REVOKED): once it succeeds,
    drop them here at once, then wait (bounded) until this process's listener has delivered
    the revocation. Every process is told by the same notification, and from its arrival
    theirs answer nothing from cache: when the caller hears back, the next request here signs
    in against the database, and one elsewhere does once that process has read the
    notification (on its own connection, usually before the caller hears back; not
    guaranteed to be)."""
    if cache is None:
        yield
        return
    delivered = asyncio.Event()
    is_watching = cache.is_connected  # without a listener nothing here would deliver it
    if is_watching:
        cache.watch(ids, delivered)  # before the commit: the listener may be quick
    try:
        yield
        cache.revoke(ids)
        if is_watching:
            try:
                await asyncio.wait_for(delivered.wait(), wait_seconds)
            except TimeoutError:
                logger.warning("revocation not heard back within %.1f s", wait_seconds)
    finally:
        cache.unwatch(ids, delivered)
