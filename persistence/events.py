"""The event outbox: events appended in the writer's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import EventType, NewEvent
from persistence.bulk import column_arrays, unnest_insert
from persistence.tables import events

_COLUMNS = ("type", "owner_id", "subject_id", "payload")
_insert = unnest_insert(events, _COLUMNS)


class SqlEventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.appended = False
        self.revokes = False  # a PRINCIPAL_REVOKED among what was appended

    async def append(self, new_events: Sequence[NewEvent]) -> None:
        if not new_events:
            return
        rows = [
            {
                "type": e.type.value,
                "owner_id": e.owner_id,
                "subject_id": e.subject_id,
                "payload": e.payload,
            }
            for e in new_events
        ]
        # One statement whatever the count; ids are taken in the list's order.
        await self._conn.execute(_insert, column_arrays(events, _COLUMNS, rows))
        self.appended = True
        self.revokes |= any(e.type is EventType.PRINCIPAL_REVOKED for e in new_events)
