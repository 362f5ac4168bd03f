"""The callback dispatcher: sends the callbacks the webhook fan-out queued, with the webhooks'
sender, retry schedule and leases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from domain.callbacks import DueCallback
from domain.ports import Clock, UnitOfWorkFactory, WebhookSender
from domain.services import callbacks
from domain.webhooks import RetrySchedule
from server.workers import Periodic

logger = logging.getLogger(__name__)


@dataclass
class CallbackDispatcher:
    uow: UnitOfWorkFactory
    sender: WebhookSender
    schedule: RetrySchedule
    clock: Clock
    lease_seconds: float
    batch_size: int = 20
    max_rounds: int = 10

    async def delivery_step(self) -> int:
        """Claim due callbacks and send them concurrently, in rounds while any are due."""
        total = 0
        for _ in range(self.max_rounds):
            claimed = await callbacks.claim_due(
                self.uow(),
                limit=self.batch_size,
                lease_seconds=self.lease_seconds,
                clock=self.clock,
            )
            if not claimed:
                break
            await self._deliver_all(claimed)
            total += len(claimed)
        return total

    async def _deliver_all(self, claimed: Sequence[DueCallback]) -> None:
        unfinished = {due.delivery.id: due for due in claimed}

        async def deliver(due: DueCallback) -> None:
            try:
                await callbacks.deliver(
                    self.uow(), self.sender, due, self.schedule, clock=self.clock
                )
            except Exception:
                # The lease runs out and the callback is claimed again.
                logger.exception("delivering callback %s failed", due.delivery.id)
            unfinished.pop(due.delivery.id, None)

        try:
            await asyncio.gather(*(deliver(due) for due in claimed))
        except asyncio.CancelledError:
            await asyncio.shield(callbacks.release(self.uow(), list(unfinished.values())))
            raise

    def runnables(self, poll_seconds: float) -> list[Periodic]:
        return [Periodic("callback-delivery", self.delivery_step, interval=poll_seconds)]
