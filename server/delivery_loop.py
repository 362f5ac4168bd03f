"""One delivery loop for webhooks and callbacks: claim due deliveries in rounds, send them
concurrently, and hand back what was not recorded when stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from uuid import UUID

logger = logging.getLogger(__name__)


class _Identified(Protocol):
    @property
    def id(self) -> UUID: ...


class _Claimed(Protocol):
    @property
    def delivery(self) -> _Identified: ...


DueT = TypeVar("DueT", bound=_Claimed)


@dataclass(frozen=True)
class DeliveryLoop(Generic[DueT]):
    """What differs between the kinds: how to claim, send one and release the unrecorded."""

    kind: str  # for the log: "webhook" or "callback"
    claim: Callable[[], Awaitable[Sequence[DueT]]]
    send: Callable[[DueT], Awaitable[object]]
    release: Callable[[list[DueT]], Awaitable[None]]
    # Rounds per tick: a busy dispatcher keeps going, yet notices a stop between ticks.
    max_rounds: int

    async def step(self) -> int:
        """Claim due deliveries and send them concurrently, in rounds while any are due."""
        total = 0
        for _ in range(self.max_rounds):
            claimed = await self.claim()
            if not claimed:
                break
            await self._deliver_all(claimed)
            total += len(claimed)
        return total

    async def _deliver_all(self, claimed: Sequence[DueT]) -> None:
        unfinished = {due.delivery.id: due for due in claimed}

        async def deliver(due: DueT) -> None:
            try:
                await self.send(due)
            except Exception:
                # The lease runs out and the delivery is claimed again.
                logger.exception("delivering %s %s failed", self.kind, due.delivery.id)
            unfinished.pop(due.delivery.id, None)

        try:
            await asyncio.gather(*(deliver(due) for due in claimed))
        except asyncio.CancelledError:
            # Stopping: hand back what was not recorded, so it goes out again at once.
            await asyncio.shield(self.release(list(unfinished.values())))
            raise
