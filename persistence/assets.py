"""The assets repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.assets import Asset, AssetStatus
from domain.pagination import Page, PageRequest
from persistence.batching import (
    Row,
    any_of,
    count_per_parent,
    grouped_in_key_order,
    page_per_parent,
    rows_in_key_order,
)
from persistence.tables import assets, submission_assets


def _asset(row: Row) -> Asset:
    m = row._mapping
    return Asset(
        id=m["id"],
        owner_id=m["owner_id"],
        file_name=m["file_name"],
        content_type=m["content_type"],
        size_bytes=m["size_bytes"],
        status=AssetStatus(m["status"]),
        object_key=m["object_key"],
        upload_expires_at=m["upload_expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _status(status: AssetStatus | None) -> list[sa.ColumnElement[bool]]:
    return [] if status is None else [assets.c.status == status.value]


class SqlAssetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_many(self, ids: Sequence[UUID]) -> list[Asset | None]:
        statement = sa.select(assets).where(any_of(assets.c.id, ids))
        return await rows_in_key_order(self._conn, statement, ids, _asset)

    async def add(self, asset: Asset) -> None:
        await self._conn.execute(
            sa.insert(assets).values(
                id=asset.id,
                owner_id=asset.owner_id,
                file_name=asset.file_name,
                content_type=asset.content_type,
                size_bytes=asset.size_bytes,
                status=asset.status.value,
                object_key=asset.object_key,
                upload_expires_at=asset.upload_expires_at,
                created_at=asset.created_at,
                updated_at=asset.updated_at,
            )
        )

    async def save(self, asset: Asset, *, expected: AssetStatus) -> Asset | None:
        statement = (
            sa.update(assets)
            .where(assets.c.id == asset.id, assets.c.status == expected.value)
            .values(status=asset.status.value, updated_at=asset.updated_at)
            .returning(*assets.c)
        )
        row = (await self._conn.execute(statement)).first()
        return None if row is None else _asset(row)

    async def stale_uploads(self, now: datetime, limit: int) -> list[Asset]:
        statement = (
            sa.select(assets)
            .where(
                assets.c.status == AssetStatus.PENDING_UPLOAD.value,
                assets.c.upload_expires_at < now,
            )
            .order_by(assets.c.upload_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_asset(row) for row in await self._conn.execute(statement)]

    async def list_for_owners(
        self, owner_ids: Sequence[UUID], request: PageRequest, status: AssetStatus | None
    ) -> list[Page[Asset]]:
        rows = sa.select(assets).where(*_status(status))
        return await page_per_parent(
            self._conn, rows, assets.c.owner_id, owner_ids, request, _asset
        )

    async def count_for_owners(
        self, owner_ids: Sequence[UUID], status: AssetStatus | None
    ) -> list[int]:
        return await count_per_parent(self._conn, assets.c.owner_id, owner_ids, _status(status))

    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Asset]]:
        statement = (
            sa.select(assets, submission_assets.c.submission_id)
            .join(submission_assets, submission_assets.c.asset_id == assets.c.id)
            .where(any_of(submission_assets.c.submission_id, submission_ids))
            .order_by(submission_assets.c.submission_id, submission_assets.c.position)
        )
        return await grouped_in_key_order(
            self._conn, statement, submission_ids, "submission_id", _asset
        )
