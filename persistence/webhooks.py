"""The webhooks repository: endpoints, deliveries, attempts, the fan-out and the delivery queue."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import EventType
from domain.pagination import Page, PageRequest
from domain.webhooks import (
    WEBHOOK_EVENT_TYPES,
    DeliveryAttempt,
    DeliveryStatus,
    DueDelivery,
    WebhookDelivery,
    WebhookEndpoint,
)
from persistence import delivery_queue as queue
from persistence.batching import (
    Row,
    any_of,
    count_per_parent,
    page_per_parent,
    rows_in_key_order,
)
from persistence.callbacks import (
    AFTER,
    NOW,
    UPTO,
    event_range,
    queue_callbacks,
    sequenced_payload,
)
from persistence.tables import (
    events,
    outbox_cursors,
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_endpoints,
)
from persistence.turns import claim_parameters, claim_values, in_turns

FAN_OUT_CURSOR = "webhooks"
_endpoints, _deliveries = webhook_endpoints, webhook_deliveries
_ORDER = (_deliveries.c.next_attempt_at,)


def _endpoint(row: Row) -> WebhookEndpoint:
    m = row._mapping
    return WebhookEndpoint(
        id=m["id"],
        owner_id=m["owner_id"],
        url=m["url"],
        events=tuple(EventType(e) for e in m["events"]),
        description=m["description"],
        is_active=m["is_active"],
        secret=m["secret"],
        previous_secret=m["previous_secret"],
        previous_secret_expires_at=m["previous_secret_expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _delivery(row: Row) -> WebhookDelivery:
    m = row._mapping
    return WebhookDelivery(
        id=m["id"],
        endpoint_id=m["endpoint_id"],
        owner_id=m["owner_id"],
        event_id=m["event_id"],
        event_type=EventType(m["event_type"]),
        payload=m["payload"],
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
    )


def _attempt(row: Row) -> DeliveryAttempt:
    m = row._mapping
    return DeliveryAttempt(
        id=m["id"],
        delivery_id=m["delivery_id"],
        attempt=m["attempt"],
        status_code=m["status_code"],
        error=m["error"],
        duration_ms=m["duration_ms"],
        created_at=m["created_at"],
    )


def _owner_of_delivery() -> sa.Label[UUID]:
    """The delivery's owner, for RETURNING clauses that cannot join."""
    owner = sa.select(_endpoints.c.owner_id).where(_endpoints.c.id == _deliveries.c.endpoint_id)
    return owner.scalar_subquery().label("owner_id")


def _deliveries_with_owner() -> sa.Select[tuple[object, ...]]:
    return sa.select(*_deliveries.c, _endpoints.c.owner_id).select_from(
        _deliveries.join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
    )


def _endpoint_values(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "url": endpoint.url,
        "events": [e.value for e in endpoint.events],
        "description": endpoint.description,
        "is_active": endpoint.is_active,
        "secret": endpoint.secret,
        "previous_secret": endpoint.previous_secret,
        "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        "updated_at": endpoint.updated_at,
    }


class SqlWebhookEndpoints:
    """Endpoint reads and writes, always scoped to the owner; mixed into the repository."""

    _conn: AsyncConnection

    async def get_endpoints(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookEndpoint | None]:
        statement = sa.select(_endpoints).where(
            any_of(_endpoints.c.id, ids), _endpoints.c.owner_id == owner_id
        )
        return await rows_in_key_order(self._conn, statement, ids, _endpoint)

    async def list_endpoints(self, owner_id: UUID) -> list[WebhookEndpoint]:
        statement = (
            sa.select(_endpoints)
            .where(_endpoints.c.owner_id == owner_id)
            .order_by(_endpoints.c.created_at, _endpoints.c.id)
        )
        return [_endpoint(row) for row in await self._conn.execute(statement)]

    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._conn.execute(
            sa.insert(_endpoints).values(
                id=endpoint.id,
                owner_id=endpoint.owner_id,
                created_at=endpoint.created_at,
                **_endpoint_values(endpoint),
            )
        )

    async def save_endpoint(self, endpoint: WebhookEndpoint) -> WebhookEndpoint | None:
        statement = (
            sa.update(_endpoints)
            .where(_endpoints.c.id == endpoint.id, _endpoints.c.owner_id == endpoint.owner_id)
            .values(**_endpoint_values(endpoint))
            .returning(*_endpoints.c)
        )
        row = (await self._conn.execute(statement)).first()
        return None if row is None else _endpoint(row)

    async def delete_endpoint(self, owner_id: UUID, endpoint_id: UUID) -> bool:
        statement = (
            sa.delete(_endpoints)
            .where(_endpoints.c.id == endpoint_id, _endpoints.c.owner_id == owner_id)
            .returning(_endpoints.c.id)
        )
        return (await self._conn.execute(statement)).first() is not None


class SqlWebhookDeliveries:
    """Delivery reads and the owner's redelivery; mixed into the repository."""

    _conn: AsyncConnection

    async def get_deliveries(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookDelivery | None]:
        statement = _deliveries_with_owner().where(
            any_of(_deliveries.c.id, ids), _endpoints.c.owner_id == owner_id
        )
        return await rows_in_key_order(self._conn, statement, ids, _delivery)

    async def list_deliveries_for_endpoints(
        self, endpoint_ids: Sequence[UUID], request: PageRequest
    ) -> list[Page[WebhookDelivery]]:
        return await page_per_parent(
            self._conn,
            _deliveries_with_owner(),
            _deliveries.c.endpoint_id,
            endpoint_ids,
            request,
            _delivery,
        )

    async def count_deliveries_for_endpoints(self, endpoint_ids: Sequence[UUID]) -> list[int]:
        return await count_per_parent(self._conn, _deliveries.c.endpoint_id, endpoint_ids)

    async def count_deliveries_by_status(self) -> dict[DeliveryStatus, int]:
        statement = sa.select(_deliveries.c.status, sa.func.count()).group_by(_deliveries.c.status)
        rows = await self._conn.execute(statement)
        return {DeliveryStatus(row[0]): row[1] for row in rows}

    async def requeue_delivery(
        self, delivery: WebhookDelivery, *, expected: DeliveryStatus, now: datetime
    ) -> WebhookDelivery | None:
        statement = (
            sa.update(_deliveries)
            .where(_deliveries.c.id == delivery.id, _deliveries.c.status == expected.value)
            .values(
                status=delivery.status.value,
                next_attempt_at=delivery.next_attempt_at,
                updated_at=now,
            )
            .returning(*_deliveries.c, _owner_of_delivery())
        )
        row = (await self._conn.execute(statement)).first()
        return None if row is None else _delivery(row)

    async def attempts_for(self, delivery_id: UUID) -> list[DeliveryAttempt]:
        statement = (
            sa.select(webhook_delivery_attempts)
            .where(webhook_delivery_attempts.c.delivery_id == delivery_id)
            .order_by(webhook_delivery_attempts.c.created_at, webhook_delivery_attempts.c.attempt)
        )
        return [_attempt(row) for row in await self._conn.execute(statement)]


def _contiguous_until(cursor: int, batch: Sequence[Row]) -> int:
    """The highest id up to which no gap may still fill.

    A gap in ids is a transaction that took an id and has not committed yet, or rolled back.
    Hold the cursor before a gap until the event after it is older than the grace period.
    """
    last = cursor
    for row in batch:
        if row.id != last + 1 and not row.is_settled:
            break
        last = row.id
    return last


# The fan-out's statements, built once: building them per round cost more CPU than running
# them (it runs in rounds of up to 500 events while events keep coming).
_ENSURE_CURSOR = (
    insert(outbox_cursors)
    .values(name=FAN_OUT_CURSOR, last_event_id=0)
    .on_conflict_do_nothing(index_elements=[outbox_cursors.c.name])
)
_LOCK_CURSOR = (
    sa.select(outbox_cursors.c.last_event_id)
    .where(outbox_cursors.c.name == FAN_OUT_CURSOR)
    .with_for_update()
)
_ADVANCE_CURSOR = (
    sa.update(outbox_cursors)
    .where(outbox_cursors.c.name == FAN_OUT_CURSOR)
    .values(last_event_id=sa.bindparam("advanced", type_=sa.BigInteger))
)


@functools.cache
def _events_to_fan_out() -> sa.Select[tuple[int, bool]]:
    """Up to fan_out_limit event ids after AFTER, each with whether it is older than
    gap_grace (bound)."""
    grace = sa.bindparam("gap_grace", type_=sa.Interval)
    settled = events.c.created_at < sa.func.now() - grace
    return (
        sa.select(events.c.id, settled.label("is_settled"))
        .where(events.c.id > sa.bindparam(AFTER, type_=sa.BigInteger))
        .order_by(events.c.id)
        .limit(sa.bindparam("fan_out_limit", type_=sa.Integer))
    )


@functools.cache
def _insert_deliveries() -> sa.Insert:
    """A delivery for each event in the range (bound as in persistence.callbacks) for every
    active endpoint of its owner subscribed to its type."""
    stamp = sa.bindparam(NOW, type_=sa.DateTime(timezone=True))
    matching = (
        sa.select(
            _endpoints.c.id,
            events.c.id,
            events.c.type,
            # The event id orders one object's deliveries; retries and concurrent sends
            # may deliver them out of order, so receivers compare it.
            sequenced_payload(),
            sa.literal(DeliveryStatus.PENDING.value),
            stamp,
            stamp,
            stamp,
        )
        .select_from(events.join(_endpoints, _endpoints.c.owner_id == events.c.owner_id))
        .where(
            *event_range(),
            events.c.type.in_([t.value for t in WEBHOOK_EVENT_TYPES]),
            _endpoints.c.is_active,
            events.c.type == sa.any_(_endpoints.c.events),
        )
    )
    return (
        insert(_deliveries)
        .from_select(["endpoint_id", *queue.QUEUED_COLUMNS], matching)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
    )


@functools.cache
def _claim_deliveries() -> sa.Update:
    """Due deliveries of active endpoints in turns across owners, under a lease; built once
    (bound as persistence.turns.claim_parameters): building it per claim cost ~1 ms of CPU, twice a
    second while idle."""
    now, lease_until, limit = claim_parameters()
    with_endpoint = _deliveries.join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
    ready = [*queue.due(_deliveries, now), _endpoints.c.is_active]
    candidates = in_turns(_deliveries, _endpoints.c.owner_id, _ORDER, ready, limit, with_endpoint)
    occurred_at = queue.occurred_at(_deliveries, events)
    return queue.claim(_deliveries, candidates, now, lease_until, _owner_of_delivery(), occurred_at)


class SqlWebhookDispatch:
    """The dispatcher's statements: fan-out from the outbox, claim, record, release."""

    _conn: AsyncConnection

    async def _locked_cursor(self) -> int:
        await self._conn.execute(_ENSURE_CURSOR)
        cursor: int = (await self._conn.execute(_LOCK_CURSOR)).scalar_one()
        return cursor

    async def fan_out(self, limit: int, now: datetime, gap_grace: timedelta) -> int:
        cursor = await self._locked_cursor()
        read = {AFTER: cursor, "gap_grace": gap_grace, "fan_out_limit": limit}
        batch = (await self._conn.execute(_events_to_fan_out(), read)).all()
        if not batch:
            return 0
        # Events past a gap are fanned out now too; ON CONFLICT makes the re-read harmless.
        fanned = {AFTER: cursor, UPTO: batch[-1].id, NOW: now}
        await self._conn.execute(_insert_deliveries(), fanned)
        await queue_callbacks(self._conn, cursor, batch[-1].id, now)
        advanced = _contiguous_until(cursor, batch)
        if advanced > cursor:
            await self._conn.execute(_ADVANCE_CURSOR, {"advanced": advanced})
        return advanced - cursor

    async def claim_deliveries(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[DueDelivery]:
        statement, values = _claim_deliveries(), claim_values(limit, now, lease_until)
        rows = (await self._conn.execute(statement, values)).all()
        if not rows:
            return []
        endpoint_ids = list({row.endpoint_id for row in rows})
        found = await self._conn.execute(
            sa.select(_endpoints).where(any_of(_endpoints.c.id, endpoint_ids))
        )
        by_id = {row.id: _endpoint(row) for row in found}
        due = [DueDelivery(_delivery(row), by_id[row.endpoint_id], row.occurred_at) for row in rows]
        return sorted(due, key=lambda d: (d.delivery.next_attempt_at or now, d.delivery.id))

    async def finish_attempt(
        self, claimed: WebhookDelivery, updated: WebhookDelivery, attempt: DeliveryAttempt
    ) -> bool:
        # Lock the delivery before writing beside it: an erasure of its owner either waits
        # for this transaction (and then takes the attempt too) or is done, and then there
        # is nothing to record.
        locked = sa.select(_deliveries.c.id).where(_deliveries.c.id == claimed.id).with_for_update()
        if (await self._conn.execute(locked)).first() is None:
            return False
        await self._conn.execute(
            sa.insert(webhook_delivery_attempts).values(
                id=attempt.id,
                delivery_id=attempt.delivery_id,
                attempt=attempt.attempt,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                created_at=attempt.created_at,
            )
        )
        statement = queue.record_outcome(_deliveries, claimed, updated, attempt.created_at)
        return (await self._conn.execute(statement)).first() is not None

    async def release(self, claimed: WebhookDelivery) -> None:
        await self._conn.execute(queue.release(_deliveries, claimed))


class SqlWebhookRepository(SqlWebhookEndpoints, SqlWebhookDeliveries, SqlWebhookDispatch):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
