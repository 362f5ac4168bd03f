"""The assets repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.assets import Asset, AssetStatus
from domain.pagination import Page, PageRequest
from persistence.batching import (
    NO_PARAMETERS,
    Parameters,
    Row,
    Select,
    any_key,
    built_once,
    counts_for_keys,
    counts_statement,
    grouped_in_key_order,
    pages_for_keys,
    pages_statement,
    rows_for_keys,
)
from persistence.driver import reusable
from persistence.tables import assets, submission_assets

# The columns _asset reads, in the order it unpacks them.
_COLUMNS = (
    assets.c.id,
    assets.c.owner_id,
    assets.c.file_name,
    assets.c.content_type,
    assets.c.size_bytes,
    assets.c.status,
    assets.c.object_key,
    assets.c.upload_expires_at,
    assets.c.created_at,
    assets.c.updated_at,
)


def _asset(row: Sequence[Any]) -> Asset:
    (
        id_,
        owner_id,
        file_name,
        content_type,
        size_bytes,
        status,
        object_key,
        upload_expires_at,
        created_at,
        updated_at,
    ) = row
    return Asset(
        id=id_,
        owner_id=owner_id,
        file_name=file_name,
        content_type=content_type,
        size_bytes=size_bytes,
        status=AssetStatus(status),
        object_key=object_key,
        upload_expires_at=upload_expires_at,
        created_at=created_at,
        updated_at=updated_at,
    )


def _linked_asset(row: Row) -> Asset:
    """An asset of _by_submission, whose last column is the submission it is linked to."""
    return _asset(row[:-1])


def _by_status(filtered: bool) -> list[sa.ColumnElement[bool]]:
    """The status filter, its value bound as `status` when executed."""
    return [assets.c.status == sa.bindparam("status")] if filtered else []


def _status(status: AssetStatus | None) -> Parameters:
    return NO_PARAMETERS if status is None else {"status": status.value}


_by_id = reusable(sa.select(*_COLUMNS).where(any_key(assets.c.id)))
_by_submission = reusable(
    sa.select(*_COLUMNS, submission_assets.c.submission_id)
    .join(submission_assets, submission_assets.c.asset_id == assets.c.id)
    .where(any_key(submission_assets.c.submission_id))
    .order_by(submission_assets.c.submission_id, submission_assets.c.position)
)


@built_once
def _owner_pages(filtered: bool, keyset: bool, descending: bool, until: bool) -> Select:
    rows = sa.select(*_COLUMNS).where(*_by_status(filtered))
    return pages_statement(
        rows, assets.c.owner_id, keyset=keyset, descending=descending, until=until
    )


@built_once
def _owner_counts(filtered: bool) -> Select:
    return counts_statement(assets.c.owner_id, _by_status(filtered))


class SqlAssetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_many(self, ids: Sequence[UUID]) -> list[Asset | None]:
        return await rows_for_keys(self._conn, _by_id, ids, _asset)

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
            .returning(*_COLUMNS)
        )
        row = (await self._conn.execute(statement)).first()
        return None if row is None else _asset(row)

    async def stale_uploads(self, now: datetime, limit: int) -> list[Asset]:
        return await self._expired_grants(AssetStatus.PENDING_UPLOAD, now, limit)

    async def get_by_object_key(self, object_key: str) -> Asset | None:
        statement = sa.select(*_COLUMNS).where(assets.c.object_key == object_key)
        row = (await self._conn.execute(statement)).first()
        return None if row is None else _asset(row)

    async def deleted_with_expired_grants(self, now: datetime, limit: int) -> list[Asset]:
        return await self._expired_grants(AssetStatus.DELETED, now, limit)

    async def _expired_grants(self, status: AssetStatus, now: datetime, limit: int) -> list[Asset]:
        """Assets in `status` whose upload URL has expired, oldest grant first, locked."""
        statement = (
            sa.select(*_COLUMNS)
            .where(assets.c.status == status.value, assets.c.upload_expires_at < now)
            .order_by(assets.c.upload_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_asset(row) for row in await self._conn.execute(statement)]

    async def forget_upload_grant(self, asset_id: UUID) -> None:
        await self._conn.execute(
            sa.update(assets).where(assets.c.id == asset_id).values(upload_expires_at=None)
        )

    async def list_for_owners(
        self, owner_ids: Sequence[UUID], request: PageRequest, status: AssetStatus | None
    ) -> list[Page[Asset]]:
        statement = _owner_pages(
            status is not None,
            request.after is not None,
            request.descending,
            request.until is not None,
        )
        return await pages_for_keys(
            self._conn, statement, owner_ids, "owner_id", request, _asset, _status(status)
        )

    async def count_for_owners(
        self, owner_ids: Sequence[UUID], status: AssetStatus | None
    ) -> list[int]:
        statement = _owner_counts(status is not None)
        return await counts_for_keys(self._conn, statement, owner_ids, _status(status))

    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Asset]]:
        return await grouped_in_key_order(
            self._conn, _by_submission, submission_ids, "submission_id", _linked_asset
        )
