"""The API keys repository."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.api_keys import LAST_USED_RESOLUTION, ApiKey
from persistence.batching import Row
from persistence.tables import api_keys

_COLUMNS = (
    api_keys.c.id,
    api_keys.c.owner_id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
)


def _key(row: Row) -> ApiKey:
    id_, owner_id, name, prefix, created_at, last_used_at, expires_at, revoked_at = row
    return ApiKey(
        id=id_,
        owner_id=owner_id,
        name=name,
        prefix=prefix,
        created_at=created_at,
        last_used_at=last_used_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


class SqlApiKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, key: ApiKey, secret_hash: bytes) -> None:
        await self._conn.execute(
            sa.insert(api_keys).values(
                id=key.id,
                owner_id=key.owner_id,
                name=key.name,
                prefix=key.prefix,
                secret_hash=secret_hash,
                created_at=key.created_at,
                expires_at=key.expires_at,
            )
        )

    async def _one(self, where: sa.ColumnElement[bool]) -> ApiKey | None:
        row = (await self._conn.execute(sa.select(*_COLUMNS).where(where))).first()
        return None if row is None else _key(row)

    async def get(self, key_id: UUID) -> ApiKey | None:
        return await self._one(api_keys.c.id == key_id)

    async def by_hash(self, secret_hash: bytes) -> ApiKey | None:
        return await self._one(api_keys.c.secret_hash == secret_hash)

    async def list_for_owner(self, owner_id: UUID) -> list[ApiKey]:
        statement = (
            sa.select(*_COLUMNS)
            .where(api_keys.c.owner_id == owner_id)
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
        )
        return [_key(row) for row in await self._conn.execute(statement)]

    async def save_revoked(self, key: ApiKey) -> None:
        await self._conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=key.revoked_at)
        )

    async def touch(self, key_id: UUID, now: datetime) -> None:
        # The condition makes concurrent requests on several processes write it once.
        await self._conn.execute(
            sa.update(api_keys)
            .where(
                api_keys.c.id == key_id,
                sa.or_(
                    api_keys.c.last_used_at.is_(None),
                    api_keys.c.last_used_at <= now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
        )
