"""Use cases for assets: request an upload URL, complete the upload, delete, sweep stale uploads."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import UUID

from domain.assets import Asset, AssetStatus
from domain.errors import Conflict, InvalidInput, NotFound
from domain.event_payloads import asset_payload
from domain.events import EventType, NewEvent
from domain.ids import new_id
from domain.ports import BlobStore, Clock, PresignedUpload, UnitOfWork
from domain.principal import Principal, require_owner, visible_only

MAX_FILE_NAME = 255
DEFAULT_CONTENT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/csv",
        "application/json",
        "text/plain",
        "audio/wav",
        "audio/x-wav",
    }
)


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    content_types: Collection[str] = DEFAULT_CONTENT_TYPES
    max_bytes: int = 100 * 1024 * 1024
    url_ttl_seconds: int = 900


def _file_name_problem(name: str) -> str | None:
    # File systems and object stores bound a name's UTF-8 bytes, not its characters.
    if not 1 <= len(name.encode("utf-8", "surrogatepass")) <= MAX_FILE_NAME:
        return f"must be 1 to {MAX_FILE_NAME} UTF-8 bytes"
    if "/" in name or "\\" in name:
        return "must not contain path separators"
    if name in {".", ".."} or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must be a plain file name without control characters"
    return None


def _validate(policy: UploadPolicy, file_name: str, content_type: str, size_bytes: int) -> None:
    problems: dict[str, str] = {}
    if problem := _file_name_problem(file_name):
        problems["input.fileName"] = problem
    if content_type not in policy.content_types:
        allowed = ", ".join(sorted(policy.content_types))
        problems["input.contentType"] = f"must be one of {allowed}"
    if not 1 <= size_bytes <= policy.max_bytes:
        problems["input.sizeBytes"] = f"must be between 1 and {policy.max_bytes}"
    if problems:
        raise InvalidInput(problems)


def asset_event(kind: EventType, asset: Asset) -> NewEvent:
    return NewEvent(
        type=kind,
        owner_id=asset.owner_id,
        subject_id=asset.id,
        payload=asset_payload(asset),
    )


async def request_upload(
    uow: UnitOfWork,
    blobs: BlobStore,
    principal: Principal,
    *,
    file_name: str,
    content_type: str,
    size_bytes: int,
    policy: UploadPolicy,
    clock: Clock,
) -> tuple[Asset, PresignedUpload]:
    _validate(policy, file_name, content_type, size_bytes)
    now = clock()
    asset_id = new_id()
    asset = Asset(
        id=asset_id,
        owner_id=principal.user_id,
        file_name=file_name,
        content_type=content_type,
        size_bytes=size_bytes,
        status=AssetStatus.PENDING_UPLOAD,
        object_key=f"assets/{principal.user_id}/{asset_id}/{file_name}",
        upload_expires_at=now + timedelta(seconds=policy.url_ttl_seconds),
        created_at=now,
        updated_at=now,
    )
    upload = await blobs.presign_upload(
        asset.object_key,
        content_type=content_type,
        size_bytes=size_bytes,
        expires_in=policy.url_ttl_seconds,
    )
    async with uow:
        await uow.assets.add(asset)
        await uow.commit()
    return asset, upload


async def _owned(uow: UnitOfWork, principal: Principal, asset_id: UUID) -> Asset:
    [asset] = visible_only(principal, await uow.assets.get_many([asset_id]))
    if asset is None or asset.status is AssetStatus.DELETED:
        raise NotFound("Asset", asset_id)
    return require_owner(principal, asset, "asset")


async def _transition(uow: UnitOfWork, asset: Asset, status: AssetStatus, clock: Clock) -> Asset:
    changed = replace(asset, status=status, updated_at=clock())
    saved = await uow.assets.save(changed, expected=asset.status)
    if saved is None:
        raise Conflict("the asset changed state meanwhile; read it and try again")
    kind = EventType.ASSET_AVAILABLE if status is AssetStatus.AVAILABLE else EventType.ASSET_DELETED
    await uow.events.append([asset_event(kind, saved)])
    await uow.commit()
    return saved


async def complete_upload(
    uow: UnitOfWork, blobs: BlobStore, principal: Principal, asset_id: UUID, *, clock: Clock
) -> Asset:
    """PENDING_UPLOAD -> AVAILABLE once the stored bytes match the announced size."""
    async with uow:
        asset = await _owned(uow, principal, asset_id)
        if asset.status is AssetStatus.AVAILABLE:
            return asset
        stored = await blobs.size_of(asset.object_key)
        if stored is None:
            raise Conflict("nothing has been uploaded yet: PUT the bytes to the upload URL first")
        if stored != asset.size_bytes:
            raise Conflict(f"the upload has {stored} bytes but {asset.size_bytes} were announced")
        await blobs.confirm(asset.object_key)
        return await _transition(uow, asset, AssetStatus.AVAILABLE, clock)


async def delete_asset(
    uow: UnitOfWork, blobs: BlobStore, principal: Principal, asset_id: UUID, *, clock: Clock
) -> Asset:
    """Mark DELETED, then remove the bytes (the row stays for submissions that used it)."""
    async with uow:
        asset = await _owned(uow, principal, asset_id)
        deleted = await _transition(uow, asset, AssetStatus.DELETED, clock)
    await blobs.delete(asset.object_key)
    return deleted


async def accepts_upload(uow: UnitOfWork, object_key: str) -> bool:
    """Whether bytes may be stored at `object_key` now: only while its asset awaits them."""
    async with uow:
        asset = await uow.assets.get_by_object_key(object_key)
    return asset is not None and asset.status is AssetStatus.PENDING_UPLOAD


async def serves_download(uow: UnitOfWork, object_key: str) -> bool:
    """Whether the bytes at `object_key` may be served now: only while their asset is
    AVAILABLE. A signed download URL outlives deleteAsset and the owner's erasure, and the
    bytes may wait for the next sweep; they are not served meanwhile."""
    async with uow:
        asset = await uow.assets.get_by_object_key(object_key)
    return asset is not None and asset.status is AssetStatus.AVAILABLE


async def sweep_stale_uploads(
    uow: UnitOfWork, blobs: BlobStore, *, clock: Clock, limit: int = 100
) -> int:
    """Delete PENDING_UPLOAD assets whose upload URL expired, with any partial bytes; then
    remove the bytes of DELETED assets once their upload URL expired."""
    async with uow:
        stale = await uow.assets.stale_uploads(clock(), limit)
        for asset in stale:
            await blobs.delete(asset.object_key)
            await uow.assets.save(
                replace(asset, status=AssetStatus.DELETED, updated_at=clock()),
                expected=AssetStatus.PENDING_UPLOAD,
            )
            await uow.assets.forget_upload_grant(asset.id)  # expired: its bytes are final
        await uow.commit()
    return len(stale) + await _sweep_deleted_bytes(uow, blobs, clock=clock, limit=limit)


async def _sweep_deleted_bytes(
    uow: UnitOfWork, blobs: BlobStore, *, clock: Clock, limit: int
) -> int:
    # A PUT racing deleteAsset, or one to S3 (which cannot ask the asset's status) after it,
    # can store bytes until the URL expires; after that nothing can, so one delete is final.
    async with uow:
        deleted = await uow.assets.deleted_with_expired_grants(clock(), limit)
        for asset in deleted:
            await blobs.delete(asset.object_key)
            await uow.assets.forget_upload_grant(asset.id)
        await uow.commit()
    return len(deleted)
