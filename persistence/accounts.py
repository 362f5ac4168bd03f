"""Erasing and reactivating accounts; the queue of stored bytes to delete (an outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.assets import Asset, AssetStatus
from domain.users import User
from persistence.assets import _COLUMNS as _ASSET_COLUMNS
from persistence.assets import _asset
from persistence.tables import (
    api_keys,
    assets,
    batches,
    blob_deletions,
    callback_deliveries,
    callback_secrets,
    events,
    outbox_cursors,
    persisted_operations,
    submissions,
    users,
    webhook_endpoints,
)
from persistence.users import _COLUMNS as _USER_COLUMNS
from persistence.users import _user
from persistence.webhooks import FAN_OUT_CURSOR

# Every column that holds a user's id, in the order erasure deletes their rows: submissions
# before their batches, assets after the submissions that use them, callbacks before the
# events they point at. Rows hanging off these go with them: results with submissions (a
# statement trigger, migration 0015), submission_assets with submissions and deliveries and
# their attempts with endpoints (ON DELETE CASCADE).
# tests/unit/test_erasure_coverage.py fails when a table with a user reference is missing.
ERASED_REFERENCES: tuple[tuple[sa.Table, str], ...] = (
    (submissions, "owner_id"),
    (batches, "owner_id"),
    (assets, "owner_id"),
    (webhook_endpoints, "owner_id"),
    (api_keys, "owner_id"),
    (callback_deliveries, "owner_id"),
    (events, "owner_id"),
    (callback_secrets, "user_id"),
    # Automatic persisted queries they registered: the text may carry personal data.
    (persisted_operations, "registered_by"),
)


def _queue_bytes(owned: sa.Select[tuple[str, datetime | None, datetime]]) -> sa.Insert:
    return (
        insert(blob_deletions)
        .from_select(["object_key", "not_final_before", "next_attempt_at"], owned)
        .on_conflict_do_nothing(index_elements=[blob_deletions.c.object_key])
    )


class SqlAccountRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def erase(self, user_id: UUID, now: datetime) -> int:
        owned = sa.select(
            assets.c.object_key,
            assets.c.upload_expires_at,
            sa.literal(now, sa.DateTime(timezone=True)),
        ).where(assets.c.owner_id == user_id)
        queued = await self._conn.execute(_queue_bytes(owned))
        # The webhook fan-out turns events into deliveries under this lock: taken first, it
        # cannot insert a delivery for an event or endpoint this transaction deletes.
        await self._conn.execute(
            sa.select(outbox_cursors.c.name)
            .where(outbox_cursors.c.name == FAN_OUT_CURSOR)
            .with_for_update()
        )
        for table, column in ERASED_REFERENCES:
            await self._conn.execute(sa.delete(table).where(table.c[column] == user_id))
        await self._conn.execute(
            sa.update(users)
            .where(users.c.id == user_id)
            .values(
                subject=sa.literal("erased:") + sa.cast(users.c.id, sa.Text),
                email="",
                name="",
                groups=[],
                is_active=False,
                erased_at=now,
                updated_at=now,
            )
        )
        return int(queued.rowcount or 0)

    async def reactivate(self, user_id: UUID, now: datetime) -> User | None:
        statement = (
            sa.update(users)
            .where(users.c.id == user_id, users.c.erased_at.is_(None))
            .values(is_active=True, updated_at=now)
            .returning(*_USER_COLUMNS)
        )
        row = (await self._conn.execute(statement)).first()
        return None if row is None else _user(row)


class SqlBlobDeletionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def due(self, now: datetime, limit: int) -> list[str]:
        statement = (
            sa.select(blob_deletions.c.object_key)
            .where(blob_deletions.c.next_attempt_at <= now)
            .order_by(blob_deletions.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self._conn.execute(statement)).scalars())

    async def forget(self, object_keys: Sequence[str], now: datetime) -> None:
        if not object_keys:
            return
        deleted = blob_deletions.c.object_key.in_(object_keys)
        grant = blob_deletions.c.not_final_before
        later = grant > now
        final = sa.or_(grant.is_(None), grant <= now)
        await self._conn.execute(sa.delete(blob_deletions).where(deleted, final))
        await self._conn.execute(
            sa.update(blob_deletions)
            .where(deleted, later)
            .values(next_attempt_at=blob_deletions.c.not_final_before, not_final_before=None)
        )

    async def postpone(self, object_key: str, until: datetime, error: str) -> None:
        await self._conn.execute(
            sa.update(blob_deletions)
            .where(blob_deletions.c.object_key == object_key)
            .values(
                attempts=blob_deletions.c.attempts + 1,
                next_attempt_at=until,
                last_error=error[:500],
            )
        )

    async def retire_assets(
        self, created_before: datetime, now: datetime, limit: int
    ) -> list[Asset]:
        live = (
            sa.select(assets.c.id)
            .where(
                assets.c.status != AssetStatus.DELETED.value, assets.c.created_at < created_before
            )
            .order_by(assets.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            sa.update(assets)
            .where(assets.c.id.in_(live))
            .values(status=AssetStatus.DELETED.value, upload_expires_at=None, updated_at=now)
            .returning(*_ASSET_COLUMNS)
        )
        retired = [_asset(row) for row in await self._conn.execute(statement)]
        if retired:
            keys = [a.object_key for a in retired]
            await self._conn.execute(
                insert(blob_deletions)
                .values([{"object_key": k, "next_attempt_at": now} for k in keys])
                .on_conflict_do_nothing(index_elements=[blob_deletions.c.object_key])
            )
        return retired
