"""This process's WebSockets: caps on how many are open (with room kept for signed-in users),
and closing a revoked user's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from starlette.types import Message, Send

logger = logging.getLogger(__name__)

REVOKED_CLOSE_CODE = 4403
EVICTED_CLOSE_CODE = 1013  # Try Again Later: a newer socket took this one's place
Close = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class SocketLimits:
    max_sockets: int = 10_000
    # Sockets without connection_init yet, in all and per address: a bounded share, so
    # strangers cannot fill the slots that signed-in users need.
    max_unauthenticated: int = 1_000
    max_unauthenticated_per_address: int = 50


class EvictableSend:
    """A socket's ASGI `send`, through which the registry closes it to make room. Once
    closed, whatever its handler still sends (an accept, an init timeout's close) goes
    nowhere instead of failing in the server."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.is_closed = False

    async def send(self, message: Message) -> None:
        if self.is_closed:
            return
        if message["type"] == "websocket.close":
            self.is_closed = True
        await self._send(message)

    async def evict(self, code: int, reason: str) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _ids(holders: UUID | Sequence[UUID]) -> Sequence[UUID]:
    return (holders,) if isinstance(holders, UUID) else holders


class Slot:
    """One admitted socket: counted until it leaves or is evicted."""

    __slots__ = ("address", "evict", "is_counted", "is_waiting")

    def __init__(self, address: str, evict: Close) -> None:
        self.address = address
        self.evict = evict
        self.is_counted = True
        self.is_waiting = True  # no successful connection_init yet


class SocketRegistry:
    """Counts sockets per process and, until connection_init succeeds, in all and per client
    address; knows each signed-in socket's user so that revoking the user closes them.

    When a share or the process is full, a new socket takes the place of the oldest socket
    still waiting for connection_init (the address's own when the address is at its share):
    a socket is refused only when every slot holds a signed-in one. So unauthenticated
    sockets, from one address or many, cannot keep a signed-in user (behind the same
    address or not) out; the user's own cap is the broker's.
    """

    def __init__(self, limits: SocketLimits | None = None) -> None:
        self.limits = limits or SocketLimits()
        self.open = 0
        # Oldest first; a dict is an ordered set with O(1) removal.
        self._waiting: dict[Slot, None] = {}
        self._waiting_at: defaultdict[str, dict[Slot, None]] = defaultdict(dict)
        self._by_user: defaultdict[UUID, set[Close]] = defaultdict(set)

    @property
    def unauthenticated(self) -> int:
        return len(self._waiting)

    async def admit(self, address: str, evict: Close) -> Slot | None:
        """Count a new socket in (evicting a waiting one if need be), or None: refused.
        `evict` closes this socket if a later one takes its place."""
        victim = self._victim_for(address)
        if victim is None and self.open >= self.limits.max_sockets:
            return None
        if victim is not None:
            self._forget(victim)
        slot = Slot(address, evict)
        self.open += 1
        self._waiting[slot] = None
        self._waiting_at[address][slot] = None
        if victim is not None:
            logger.info("evicted a socket from %s waiting for connection_init", victim.address)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(victim.evict(EVICTED_CLOSE_CODE, "too many sockets"), 2.0)
        return slot

    def _victim_for(self, address: str) -> Slot | None:
        limits = self.limits
        own = self._waiting_at.get(address)
        if own and len(own) >= limits.max_unauthenticated_per_address:
            return next(iter(own))
        if self._waiting and (
            len(self._waiting) >= limits.max_unauthenticated or self.open >= limits.max_sockets
        ):
            return next(iter(self._waiting))
        return None

    def signed_in(self, slot: Slot, holders: UUID | Sequence[UUID], close: Close) -> None:
        """`holders`: the user's id, and an API key's when signed in with one; revoking
        either closes the socket."""
        self._stop_waiting(slot)
        for holder in _ids(holders):
            self._by_user[holder].add(close)

    def release(
        self, slot: Slot, holders: UUID | Sequence[UUID] | None, close: Close | None
    ) -> None:
        self._forget(slot)
        if holders is None or close is None:
            return
        for holder in _ids(holders):
            closers = self._by_user.get(holder)
            if closers is not None:
                closers.discard(close)
                if not closers:
                    del self._by_user[holder]

    def _forget(self, slot: Slot) -> None:
        self._stop_waiting(slot)
        if slot.is_counted:
            slot.is_counted = False
            self.open -= 1

    def _stop_waiting(self, slot: Slot) -> None:
        if not slot.is_waiting:
            return
        slot.is_waiting = False
        del self._waiting[slot]
        own = self._waiting_at[slot.address]
        del own[slot]
        if not own:
            del self._waiting_at[slot.address]

    async def revoke(self, user_ids: Iterable[UUID], reason: str = "access revoked") -> int:
        """Close every socket of these users with 4403; how many were closed."""
        closers = [close for user_id in set(user_ids) for close in self._by_user.pop(user_id, ())]
        for close in closers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(REVOKED_CLOSE_CODE, reason), timeout=2.0)
        if closers:
            logger.info("closed %d socket(s) of revoked principals", len(closers))
        return len(closers)
