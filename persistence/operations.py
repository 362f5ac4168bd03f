"""Persisted GraphQL operations: documents by SHA-256, for APQ and trusted documents."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.tables import persisted_operations as _operations


def _prune(registered_by: UUID, quota: int) -> sa.Delete:
    """Delete the caller's least recently used documents beyond its quota."""
    beyond = (
        sa.select(_operations.c.sha256)
        .where(_operations.c.registered_by == registered_by, sa.not_(_operations.c.is_trusted))
        .order_by(_operations.c.last_used_at.desc(), _operations.c.created_at.desc())
        .offset(quota)
    )
    return sa.delete(_operations).where(
        _operations.c.sha256.in_(beyond), sa.not_(_operations.c.is_trusted)
    )


class SqlPersistedOperations:
    """Each call takes a short connection of its own: lookups happen before any unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, sha256: str) -> str | None:
        # One statement: the lookup is also the use that keeps the document from pruning.
        statement = (
            sa.update(_operations)
            .where(_operations.c.sha256 == sha256)
            .values(last_used_at=sa.func.now())
            .returning(_operations.c.document)
        )
        async with self._engine.begin() as conn:
            document: str | None = (await conn.execute(statement)).scalar_one_or_none()
        return document

    async def put(
        self,
        sha256: str,
        document: str,
        trusted: bool = False,
        *,
        registered_by: UUID | None = None,
        quota: int | None = None,
    ) -> None:
        statement = insert(_operations).values(
            sha256=sha256,
            document=document,
            is_trusted=trusted,
            registered_by=None if trusted else registered_by,
        )
        if trusted:
            statement = statement.on_conflict_do_update(
                index_elements=[_operations.c.sha256], set_={"is_trusted": True}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=[_operations.c.sha256])
        async with self._engine.begin() as conn:
            await conn.execute(statement)
            if registered_by is not None and quota is not None and not trusted:
                await conn.execute(_prune(registered_by, quota))

    async def is_trusted(self, sha256: str) -> bool:
        statement = sa.select(_operations.c.is_trusted).where(_operations.c.sha256 == sha256)
        async with self._engine.connect() as conn:
            trusted: bool | None = (await conn.execute(statement)).scalar_one_or_none()
        return bool(trusted)
