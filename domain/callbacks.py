"""Callbacks: one signed POST per finished submission or batch to the URL its request named.

They ride the webhooks' machinery (the outbox fan-out, the retry schedule, DEAD, the SSRF
guard, the sender) but are signed with the owner's callback secret, not an endpoint's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.models import JSONValue
from domain.webhooks import DeliveryStatus, WebhookMessage


def callback_id(event_id: int) -> str:
    """The webhook-id of a callback: the same for every attempt, so receivers de-duplicate."""
    return f"cb_{event_id}"


@dataclass(frozen=True, slots=True)
class CallbackDelivery:
    id: UUID
    owner_id: UUID
    subject_id: UUID  # the submission or batch: at most one callback each
    url: str
    event_id: int
    event_type: str  # the wire name, e.g. "submission.succeeded", "batch.completed"
    payload: dict[str, JSONValue]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueCallback:
    """A claimed callback with what signing it needs: the owner's secret and the event time.

    `secret` is None when the owner's secret is gone (erased account): the attempt fails."""

    delivery: CallbackDelivery
    secret: str | None
    occurred_at: datetime

    def message(self) -> WebhookMessage:
        assert self.secret is not None, "a callback without a secret is never sent"
        return WebhookMessage(
            webhook_id=callback_id(self.delivery.event_id),
            url=self.delivery.url,
            event_type=self.delivery.event_type,
            occurred_at=self.occurred_at,
            data=self.delivery.payload,
            secrets=(self.secret,),
        )
