"""The SQL both delivery queues share (webhook_deliveries and callback_deliveries): which rows
are due, claiming them under a lease with SKIP LOCKED, and the fenced outcome and release."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa

from domain.webhooks import DeliveryStatus

RETRYABLE = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)


class Claimed(Protocol):
    """What the fence needs of a claimed delivery."""

    @property
    def id(self) -> UUID: ...
    @property
    def attempts(self) -> int: ...


class Outcome(Claimed, Protocol):
    """What recording an attempt writes back."""

    @property
    def status(self) -> DeliveryStatus: ...
    @property
    def last_status_code(self) -> int | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...


# The columns an INSERT ... SELECT of new deliveries fills after its queue's own (the
# endpoint, or the owner, subject and URL): the event, its payload, PENDING, and the time
# (next attempt, created, updated).
QUEUED_COLUMNS = (
    "event_id",
    "event_type",
    "payload",
    "status",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


def due(table: sa.Table, now: Any) -> list[sa.ColumnElement[bool]]:
    """Retryable, due, and not under a live lease."""
    return [
        table.c.status.in_(RETRYABLE),
        table.c.next_attempt_at <= now,
        sa.or_(table.c.lease_expires_at.is_(None), table.c.lease_expires_at < now),
    ]


def occurred_at(table: sa.Table, events: sa.Table) -> sa.Label[datetime]:
    """When the delivery's event happened (the message's timestamp)."""
    return (
        sa.select(events.c.created_at)
        .where(events.c.id == table.c.event_id)
        .scalar_subquery()
        .label("occurred_at")
    )


def claim(
    table: sa.Table,
    candidates: sa.ScalarSelect[Any],
    now: Any,
    lease_until: Any,
    *returning: sa.ColumnElement[Any],
) -> sa.Update:
    """Take the candidates (selected FOR UPDATE SKIP LOCKED) under a lease, counting the attempt."""
    return (
        sa.update(table)
        .where(table.c.id.in_(candidates))
        .values(attempts=table.c.attempts + 1, lease_expires_at=lease_until, updated_at=now)
        .returning(*table.c, *returning)
    )


def held_by(table: sa.Table, claimed: Claimed) -> list[sa.ColumnElement[bool]]:
    """The fence: still retryable and not claimed again since (the attempt count is the same)."""
    return [
        table.c.id == claimed.id,
        table.c.attempts == claimed.attempts,
        table.c.status.in_(RETRYABLE),
    ]


def record_outcome(
    table: sa.Table, claimed: Claimed, updated: Outcome, updated_at: Any
) -> sa.Update:
    """Write the attempt's next state if the claim still holds; returns the id when it did."""
    return (
        sa.update(table)
        .where(*held_by(table, claimed))
        .values(
            status=updated.status.value,
            last_status_code=updated.last_status_code,
            last_error=updated.last_error,
            next_attempt_at=updated.next_attempt_at,
            lease_expires_at=None,
            updated_at=updated_at,
        )
        .returning(table.c.id)
    )


def release(table: sa.Table, claimed: Claimed) -> sa.Update:
    """Hand an unrecorded claim back: its attempt did not count, and it is due again at once."""
    return (
        sa.update(table)
        .where(*held_by(table, claimed))
        .values(attempts=table.c.attempts - 1, lease_expires_at=None)
    )
