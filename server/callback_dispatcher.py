"""The callback dispatcher: sends the callbacks the webhook fan-out queued, with the webhooks'
sender, retry schedule and leases."""

from __future__ import annotations

from dataclasses import dataclass

from domain.callbacks import DueCallback
from domain.ports import Clock, UnitOfWorkFactory, WebhookSender
from domain.services import callbacks
from domain.webhooks import RetrySchedule
from server.delivery_loop import DeliveryLoop
from server.workers import Periodic


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
        return await DeliveryLoop[DueCallback](
            kind="callback",
            claim=lambda: callbacks.claim_due(
                self.uow(),
                limit=self.batch_size,
                lease_seconds=self.lease_seconds,
                clock=self.clock,
            ),
            send=lambda due: callbacks.deliver(
                self.uow(), self.sender, due, self.schedule, clock=self.clock
            ),
            release=lambda unfinished: callbacks.release(self.uow(), unfinished),
            max_rounds=self.max_rounds,
        ).step()

    def runnables(self, poll_seconds: float) -> list[Periodic]:
        return [Periodic("callback-delivery", self.delivery_step, interval=poll_seconds)]
