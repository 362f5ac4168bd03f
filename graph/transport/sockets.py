"""This process's WebSockets: caps on how many are open, and closing a revoked user's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

logger = logging.getLogger(__name__)

REVOKED_CLOSE_CODE = 4403
Close = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class SocketLimits:
    max_sockets: int = 10_000
    max_unauthenticated_per_address: int = 50


def _ids(holders: UUID | Sequence[UUID]) -> Sequence[UUID]:
    return (holders,) if isinstance(holders, UUID) else holders


class SocketRegistry:
    """Counts sockets per process and, until connection_init succeeds, per client address;
    knows each signed-in socket's user so that revoking the user closes them."""

    def __init__(self, limits: SocketLimits | None = None) -> None:
        self.limits = limits or SocketLimits()
        self.open = 0
        self._unauthenticated: Counter[str] = Counter()
        self._by_user: defaultdict[UUID, set[Close]] = defaultdict(set)

    def admit(self, address: str) -> bool:
        """Count a new socket in, or refuse it when a cap is reached."""
        if self.open >= self.limits.max_sockets:
            return False
        if self._unauthenticated[address] >= self.limits.max_unauthenticated_per_address:
            return False
        self.open += 1
        self._unauthenticated[address] += 1
        return True

    def signed_in(self, address: str, holders: UUID | Sequence[UUID], close: Close) -> None:
        """`holders`: the user's id, and an API key's when signed in with one; revoking
        either closes the socket."""
        self._forget_unauthenticated(address)
        for holder in _ids(holders):
            self._by_user[holder].add(close)

    def release(
        self, address: str, holders: UUID | Sequence[UUID] | None, close: Close | None
    ) -> None:
        self.open -= 1
        if holders is None or close is None:
            self._forget_unauthenticated(address)
            return
        for holder in _ids(holders):
            closers = self._by_user.get(holder)
            if closers is not None:
                closers.discard(close)
                if not closers:
                    del self._by_user[holder]

    def _forget_unauthenticated(self, address: str) -> None:
        self._unauthenticated[address] -= 1
        if self._unauthenticated[address] <= 0:
            del self._unauthenticated[address]

    async def revoke(self, user_ids: Iterable[UUID], reason: str = "access revoked") -> int:
        """Close every socket of these users with 4403; how many were closed."""
        closers = [close for user_id in set(user_ids) for close in self._by_user.pop(user_id, ())]
        for close in closers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(REVOKED_CLOSE_CODE, reason), timeout=2.0)
        if closers:
            logger.info("closed %d socket(s) of revoked principals", len(closers))
        return len(closers)
