"""Persisted GraphQL operations: documents by SHA-256, for APQ and trusted documents."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.tables import persisted_operations as _operations


class SqlPersistedOperations:
    """Each call takes a short connection of its own: lookups happen before any unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, sha256: str) -> str | None:
        statement = sa.select(_operations.c.document).where(_operations.c.sha256 == sha256)
        async with self._engine.connect() as conn:
            document: str | None = (await conn.execute(statement)).scalar_one_or_none()
        return document

    async def put(self, sha256: str, document: str, trusted: bool = False) -> None:
        statement = insert(_operations).values(sha256=sha256, document=document, is_trusted=trusted)
        if trusted:
            statement = statement.on_conflict_do_update(
                index_elements=[_operations.c.sha256], set_={"is_trusted": True}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=[_operations.c.sha256])
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def is_trusted(self, sha256: str) -> bool:
        statement = sa.select(_operations.c.is_trusted).where(_operations.c.sha256 == sha256)
        async with self._engine.connect() as conn:
            trusted: bool | None = (await conn.execute(statement)).scalar_one_or_none()
        return bool(trusted)
