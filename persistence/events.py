"""The event outbox: events appended in the writer's transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import NewEvent
from persistence.tables import events


class SqlEventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.appended = False

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
        await self._conn.execute(sa.insert(events), rows)
        self.appended = True
