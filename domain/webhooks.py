"""Webhooks: endpoints that receive signed events, deliveries of events to them, and their rules."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from domain.errors import Conflict
from domain.events import EventType
from domain.models import JSONValue

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
SECRET_BYTES = 32
# After a rotation the old secret still signs for this long, so receivers can switch over.
PREVIOUS_SECRET_TTL = timedelta(hours=24)
WEBHOOK_EVENT_TYPES = tuple(t for t in EventType if t.is_webhook_event)


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: "whsec_" + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_id(event_id: int) -> str:
    """The message id a receiver de-duplicates on: the same for every attempt of an event."""
    return f"evt_{event_id}"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DEAD = "DEAD"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: UUID
    owner_id: UUID
    url: str
    events: tuple[EventType, ...]
    description: str
    is_active: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The current secret, plus the previous one while it is within its grace period."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def rotated(self, secret: str, now: datetime) -> WebhookEndpoint:
        return replace(
            self,
            secret=secret,
            previous_secret=self.secret,
            previous_secret_expires_at=now + PREVIOUS_SECRET_TTL,
            updated_at=now,
        )

    def wants(self, event_type: EventType) -> bool:
        return self.is_active and event_type.is_webhook_event and event_type in self.events


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: UUID
    endpoint_id: UUID
    owner_id: UUID
    event_id: int
    event_type: EventType
    payload: dict[str, JSONValue]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.event_id)

    def requeued(self, now: datetime) -> WebhookDelivery:
        """DEAD or FAILED -> PENDING, due now; anything else is a conflict."""
        if self.status not in {DeliveryStatus.DEAD, DeliveryStatus.FAILED}:
            raise Conflict(f"only FAILED or DEAD deliveries can be redelivered, not {self.status}")
        return replace(self, status=DeliveryStatus.PENDING, next_attempt_at=now)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one HTTP attempt gave: a status code, or an error when no response came."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    id: UUID
    delivery_id: UUID
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """Everything a sender needs for one signed POST."""

    webhook_id: str
    url: str
    event_type: str  # the wire name, e.g. "submission.succeeded"
    occurred_at: datetime
    data: dict[str, JSONValue]
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what sending it needs: its endpoint and the event's time."""

    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    occurred_at: datetime

    def message(self, now: datetime) -> WebhookMessage:
        return WebhookMessage(
            webhook_id=self.delivery.webhook_id,
            url=self.endpoint.url,
            event_type=self.delivery.event_type.wire_name,
            occurred_at=self.occurred_at,
            data=self.delivery.payload,
            secrets=self.endpoint.signing_secrets(now),
        )


Jitter = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Seconds to wait after each failed attempt; after the last step the delivery is DEAD."""

    delays: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    jitter: float = 0.1

    def delay_after(self, attempts: int, uniform: Jitter) -> float | None:
        """The wait before the next attempt once `attempts` have failed; None when none is left."""
        if not 1 <= attempts <= len(self.delays):
            return None
        base = self.delays[attempts - 1]
        return base * uniform(1 - self.jitter, 1 + self.jitter)

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1
