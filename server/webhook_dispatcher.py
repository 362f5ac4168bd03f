"""The webhook dispatcher: one loop fans events out to deliveries, one sends the due deliveries."""

from __future__ import annotations

from dataclasses import dataclass

from domain.ports import Clock, UnitOfWorkFactory, WebhookSender
from domain.services import webhooks
from domain.webhooks import DueDelivery, RetrySchedule
from server.delivery_loop import DeliveryLoop
from server.workers import Periodic


def lease_seconds_for(timeout_seconds: float) -> float:
    """Long enough that a live dispatcher always records before another may claim again."""
    return timeout_seconds * 3 + 5


@dataclass
class WebhookDispatcher:
    uow: UnitOfWorkFactory
    sender: WebhookSender
    schedule: RetrySchedule
    clock: Clock
    lease_seconds: float
    batch_size: int = 20
    fan_out_limit: int = 500
    # Rounds per tick: a busy dispatcher keeps going, yet notices a stop between ticks.
    max_rounds: int = 10

    async def fan_out_step(self) -> int:
        """Fan out what is new, in rounds while full batches keep coming."""
        total = 0
        for _ in range(self.max_rounds):
            advanced = await webhooks.fan_out(
                self.uow(), clock=self.clock, limit=self.fan_out_limit
            )
            total += advanced
            if advanced < self.fan_out_limit:
                break
        return total

    async def delivery_step(self) -> int:
        """Claim due deliveries and send them concurrently, in rounds while any are due."""
        return await DeliveryLoop[DueDelivery](
            kind="webhook",
            claim=lambda: webhooks.claim_due_deliveries(
                self.uow(),
                limit=self.batch_size,
                lease_seconds=self.lease_seconds,
                clock=self.clock,
            ),
            send=lambda due: webhooks.deliver(
                self.uow(), self.sender, due, self.schedule, clock=self.clock
            ),
            release=lambda unfinished: webhooks.release(self.uow(), unfinished),
            max_rounds=self.max_rounds,
        ).step()

    def runnables(self, poll_seconds: float) -> list[Periodic]:
        return [
            Periodic("webhook-fan-out", self.fan_out_step, interval=poll_seconds),
            Periodic("webhook-delivery", self.delivery_step, interval=poll_seconds),
        ]
