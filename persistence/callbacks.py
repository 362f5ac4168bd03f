"""The callbacks repository: callback secrets, and callback deliveries queued from the outbox."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.callbacks import CallbackDelivery, DueCallback
from domain.events import EventType
from domain.submissions import FINISHED
from domain.webhooks import DeliveryStatus
from persistence import delivery_queue as queue
from persistence.batching import Row, any_of
from persistence.tables import (
    batches,
    callback_deliveries,
    callback_secrets,
    events,
    submissions,
)
from persistence.turns import claim_parameters, claim_values, in_turns

# Each of these finishes its submission; SUBMISSION_UPDATED does only as CANCELLED (it also
# tells RUNNING and a retry), so only its payload is looked into: a json payload is parsed
# for that (persistence/tables.py), and a batch's run writes a thousand of each.
_FINISHING_EVENTS = (EventType.SUBMISSION_SUCCEEDED.value, EventType.SUBMISSION_FAILED.value)
_deliveries = callback_deliveries
_ORDER = (_deliveries.c.next_attempt_at,)


def _delivery(row: Row) -> CallbackDelivery:
    m = row._mapping
    return CallbackDelivery(
        id=m["id"],
        owner_id=m["owner_id"],
        subject_id=m["subject_id"],
        url=m["url"],
        event_id=m["event_id"],
        event_type=m["event_type"],
        payload=m["payload"],
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
    )


# The fan-out's range of events and its time, bound in the statements it runs (built once).
AFTER, UPTO, NOW = "after", "upto", "now"


def event_range() -> list[sa.ColumnElement[bool]]:
    """Events in (after, upto], bound as AFTER and UPTO."""
    return [
        events.c.id > sa.bindparam(AFTER, type_=sa.BigInteger),
        events.c.id <= sa.bindparam(UPTO, type_=sa.BigInteger),
    ]


def sequenced_payload() -> sa.ColumnElement[Any]:
    """An event's payload as a delivery's: jsonb (the events' own is json), with the event's
    id as its "sequence"."""
    sequence = sa.func.jsonb_build_object("sequence", events.c.id)
    return sa.cast(events.c.payload, JSONB).op("||", return_type=JSONB)(sequence)


def _queued(url: sa.ColumnElement[str], kind: sa.ColumnElement[str]) -> list[sa.ColumnElement[Any]]:
    stamp = sa.bindparam(NOW, type_=sa.DateTime(timezone=True))
    return [
        events.c.owner_id,
        events.c.subject_id,
        url,
        events.c.id,
        kind,
        sequenced_payload(),
        sa.literal(DeliveryStatus.PENDING.value),
        stamp,
        stamp,
        stamp,
    ]


@functools.cache
def _queue_callbacks() -> tuple[sa.Insert, sa.Insert]:
    """The two INSERTs of queue_callbacks (submissions', batches'), built once: building
    them per fan-out round cost more CPU than running them."""
    finished = [s.value for s in FINISHED]
    for_submissions = (
        sa.select(
            *_queued(
                submissions.c.callback_url,
                sa.literal("submission.") + sa.func.lower(events.c.payload["status"].astext),
            )
        )
        .select_from(events.join(submissions, submissions.c.id == events.c.subject_id))
        .where(
            *event_range(),
            sa.or_(
                events.c.type.in_(_FINISHING_EVENTS),
                sa.and_(
                    events.c.type == EventType.SUBMISSION_UPDATED.value,
                    events.c.payload["status"].astext.in_(finished),
                ),
            ),
            submissions.c.callback_url.is_not(None),
        )
    )
    for_batches = (
        sa.select(*_queued(batches.c.callback_url, sa.literal("batch.completed")))
        .select_from(events.join(batches, batches.c.id == events.c.subject_id))
        .where(
            *event_range(),
            events.c.type == EventType.BATCH_COMPLETED.value,
            batches.c.callback_url.is_not(None),
        )
    )
    columns = ["owner_id", "subject_id", "url", *queue.QUEUED_COLUMNS]
    first, second = (
        insert(_deliveries)
        .from_select(columns, matching)
        .on_conflict_do_nothing(index_elements=["subject_id"])
        for matching in (for_submissions, for_batches)
    )
    return first, second


async def queue_callbacks(conn: AsyncConnection, after: int, upto: int, now: datetime) -> None:
    """In the webhook fan-out's transaction: a callback for each event in (after, upto] that
    finished a submission or batch whose request named a callbackUrl. The unique subject_id
    makes it one per submission or batch however often an event range is read again."""
    values = {AFTER: after, UPTO: upto, NOW: now}
    for statement in _queue_callbacks():
        await conn.execute(statement, values)


@functools.cache
def _claim() -> sa.Update:
    """Due callbacks in turns across owners, under a lease, each with its owner's secret;
    built once (bound as persistence.turns.claim_parameters): building it per claim cost
    ~1 ms of CPU, twice a second while idle."""
    now, lease_until, limit = claim_parameters()
    ready = queue.due(_deliveries, now)
    candidates = in_turns(_deliveries, _deliveries.c.owner_id, _ORDER, ready, limit)
    secret = (
        sa.select(callback_secrets.c.secret)
        .where(callback_secrets.c.user_id == _deliveries.c.owner_id)
        .scalar_subquery()
        .label("secret")
    )
    occurred_at = queue.occurred_at(_deliveries, events)
    return queue.claim(_deliveries, candidates, now, lease_until, secret, occurred_at)


class SqlCallbackRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def has_secret(self, user_id: UUID) -> bool:
        statement = sa.select(callback_secrets.c.user_id).where(
            callback_secrets.c.user_id == user_id
        )
        return (await self._conn.execute(statement)).first() is not None

    async def set_secret(self, user_id: UUID, secret: str, now: datetime) -> None:
        statement = (
            insert(callback_secrets)
            .values(user_id=user_id, secret=secret, created_at=now, updated_at=now)
            .on_conflict_do_update(
                index_elements=[callback_secrets.c.user_id],
                set_={"secret": secret, "updated_at": now},
            )
        )
        await self._conn.execute(statement)

    async def for_subject(self, subject_id: UUID) -> list[CallbackDelivery]:
        statement = sa.select(_deliveries).where(_deliveries.c.subject_id == subject_id)
        return [_delivery(row) for row in await self._conn.execute(statement)]

    async def claim(self, limit: int, now: datetime, lease_until: datetime) -> list[DueCallback]:
        values = claim_values(limit, now, lease_until)
        rows = (await self._conn.execute(_claim(), values)).all()
        due = [DueCallback(_delivery(row), row.secret, row.occurred_at) for row in rows]
        return sorted(due, key=lambda d: (d.delivery.next_attempt_at or now, d.delivery.id))

    async def finish_attempt(self, claimed: CallbackDelivery, updated: CallbackDelivery) -> bool:
        statement = queue.record_outcome(_deliveries, claimed, updated, sa.func.now())
        return (await self._conn.execute(statement)).first() is not None

    async def release(self, claimed: CallbackDelivery) -> None:
        await self._conn.execute(queue.release(_deliveries, claimed))

    async def count_by_status(self) -> dict[DeliveryStatus, int]:
        statement = sa.select(_deliveries.c.status, sa.func.count()).group_by(_deliveries.c.status)
        return {DeliveryStatus(row[0]): row[1] for row in await self._conn.execute(statement)}

    async def get_many(self, ids: Sequence[UUID]) -> list[CallbackDelivery | None]:
        statement = sa.select(_deliveries).where(any_of(_deliveries.c.id, ids))
        by_id = {row.id: _delivery(row) for row in await self._conn.execute(statement)}
        return [by_id.get(i) for i in ids]
