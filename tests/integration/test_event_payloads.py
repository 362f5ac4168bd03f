"""Submission events whose payloads the store writes itself (append_changes) are stored exactly
as the payloads the domain builds (append of event_payloads.events_of), byte for byte."""

from __future__ import annotations

from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.event_payloads import events_of
from persistence.tables import events
from persistence.unit_of_work import SqlUnitOfWork
from tests.event_changes import varied_changes
from tests.factories import make_user


async def _stored(db: AsyncEngine) -> list[tuple[str, UUID, UUID, str]]:
    statement = sa.select(
        events.c.type, events.c.owner_id, events.c.subject_id, sa.cast(events.c.payload, sa.Text)
    ).order_by(events.c.id)
    async with db.connect() as conn:
        return [(row[0], row[1], row[2], row[3]) for row in await conn.execute(statement)]


async def test_payloads_written_by_the_store_are_stored_as_the_domain_writes_them(
    db: AsyncEngine,
) -> None:
    changes = varied_changes(await make_user(db))
    expected = events_of(changes)
    async with SqlUnitOfWork(db) as uow:
        await uow.events.append(expected)
        await uow.commit()
    by_domain = await _stored(db)
    async with db.begin() as conn:
        await conn.execute(sa.delete(events))
    async with SqlUnitOfWork(db) as uow:
        await uow.events.append_changes(changes)
        await uow.commit()
    by_store = await _stored(db)

    assert len(by_domain) == len(expected) == 12  # 8 changes, 4 of them announce a result
    assert by_store == by_domain
    assert [(e.type.value, e.owner_id, e.subject_id) for e in expected] == [
        row[:3] for row in by_store
    ]


async def test_payloads_are_kept_as_the_text_written(db: AsyncEngine) -> None:
    """json, not jsonb (migration 0016): PostgreSQL keeps each payload's text, as orjson
    wrote it, where jsonb would have parsed it and printed it back (keys reordered, spaces)."""
    changes = varied_changes(await make_user(db))
    async with SqlUnitOfWork(db) as uow:
        await uow.events.append_changes(changes)
        await uow.commit()
    stored = [row[3] for row in await _stored(db)]
    assert stored == [orjson.dumps(e.payload).decode() for e in events_of(changes)]
