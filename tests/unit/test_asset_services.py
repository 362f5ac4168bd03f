"""Asset use cases against fakes: upload validation, completion, deletion, the stale sweep."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.assets import Asset, AssetStatus
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.events import EventType
from domain.principal import Principal
from domain.services import assets
from domain.services.assets import UploadPolicy
from tests.unit.fakes import FakeBlobStore, FakeClock, FakeData, FakeUnitOfWork

POLICY = UploadPolicy(content_types={"image/png", "text/csv"}, max_bytes=1000, url_ttl_seconds=900)


def principal(*, is_admin: bool = False) -> Principal:
    ident = uuid.uuid4()
    return Principal(user_id=ident, subject=str(ident), groups=(), is_admin=is_admin)


async def request(
    data: FakeData,
    blobs: FakeBlobStore,
    who: Principal,
    *,
    file_name: str = "photo.png",
    content_type: str = "image/png",
    size_bytes: int = 3,
    clock: FakeClock | None = None,
) -> Asset:
    asset, _ = await assets.request_upload(
        FakeUnitOfWork(data),
        blobs,
        who,
        file_name=file_name,
        content_type=content_type,
        size_bytes=size_bytes,
        policy=POLICY,
        clock=clock or FakeClock(),
    )
    return asset


@pytest.mark.parametrize(
    ("file_name", "content_type", "size_bytes", "fields"),
    [
        ("a/b.png", "image/png", 3, {"input.fileName"}),
        ("a\\b.png", "image/png", 3, {"input.fileName"}),
        ("..", "image/png", 3, {"input.fileName"}),
        ("bad\x07name.png", "image/png", 3, {"input.fileName"}),
        ("", "image/png", 3, {"input.fileName"}),
        ("x" * 256, "image/png", 3, {"input.fileName"}),
        ("ok.png", "application/x-sh", 3, {"input.contentType"}),
        ("ok.png", "image/png", 0, {"input.sizeBytes"}),
        ("ok.png", "image/png", 1001, {"input.sizeBytes"}),
        ("a/b", "text/html", -1, {"input.fileName", "input.contentType", "input.sizeBytes"}),
    ],
)
async def test_request_upload_validation_names_each_bad_field(
    file_name: str, content_type: str, size_bytes: int, fields: set[str]
) -> None:
    data = FakeData()

    with pytest.raises(InvalidInput) as raised:
        await request(
            data,
            FakeBlobStore(),
            principal(),
            file_name=file_name,
            content_type=content_type,
            size_bytes=size_bytes,
        )

    assert set(raised.value.fields) == fields
    assert data.assets == {}


async def test_request_upload_stores_pending_upload_with_expiry() -> None:
    data, blobs, who, clock = FakeData(), FakeBlobStore(), principal(), FakeClock()

    asset, upload = await assets.request_upload(
        FakeUnitOfWork(data),
        blobs,
        who,
        file_name="photo.png",
        content_type="image/png",
        size_bytes=1000,
        policy=POLICY,
        clock=clock,
    )

    assert data.assets[asset.id] == asset
    assert asset.status is AssetStatus.PENDING_UPLOAD
    assert asset.owner_id == who.user_id
    assert asset.upload_expires_at == clock.now + timedelta(seconds=900)
    assert asset.object_key.endswith(f"/{asset.id}/photo.png")
    assert upload.headers == {"Content-Type": "image/png", "Content-Length": "1000"}


async def test_complete_without_bytes_is_conflict() -> None:
    data, blobs, who = FakeData(), FakeBlobStore(), principal()
    asset = await request(data, blobs, who)

    with pytest.raises(Conflict, match="nothing has been uploaded"):
        await assets.complete_upload(FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock())
    assert data.assets[asset.id].status is AssetStatus.PENDING_UPLOAD


async def test_complete_with_wrong_size_is_conflict_naming_both_sizes() -> None:
    data, blobs, who = FakeData(), FakeBlobStore(), principal()
    asset = await request(data, blobs, who, size_bytes=3)
    blobs.blobs[asset.object_key] = b"12345"

    with pytest.raises(Conflict) as raised:
        await assets.complete_upload(FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock())

    assert "5" in str(raised.value)
    assert "3" in str(raised.value)
    assert data.events == []
    assert blobs.confirmed == []


async def test_complete_makes_available_and_emits_asset_available_once() -> None:
    data, blobs, who = FakeData(), FakeBlobStore(), principal()
    asset = await request(data, blobs, who)
    blobs.blobs[asset.object_key] = b"abc"

    done = await assets.complete_upload(
        FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock()
    )
    again = await assets.complete_upload(
        FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock()
    )

    assert done.status is AssetStatus.AVAILABLE
    assert again == done
    assert [(e.type, e.subject_id) for e in data.events] == [(EventType.ASSET_AVAILABLE, asset.id)]
    assert blobs.confirmed == [asset.object_key]


async def test_complete_or_delete_of_anothers_asset_is_not_found() -> None:
    data, blobs, owner = FakeData(), FakeBlobStore(), principal()
    asset = await request(data, blobs, owner)
    blobs.blobs[asset.object_key] = b"abc"

    with pytest.raises(NotFound):
        await assets.complete_upload(
            FakeUnitOfWork(data), blobs, principal(), asset.id, clock=FakeClock()
        )
    with pytest.raises(NotFound):
        await assets.delete_asset(
            FakeUnitOfWork(data), blobs, principal(), asset.id, clock=FakeClock()
        )
    assert asset.object_key in blobs.blobs


async def test_delete_marks_deleted_emits_event_and_removes_bytes() -> None:
    data, blobs, who = FakeData(), FakeBlobStore(), principal()
    asset = await request(data, blobs, who)
    blobs.blobs[asset.object_key] = b"abc"
    await assets.complete_upload(FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock())

    deleted = await assets.delete_asset(
        FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock()
    )

    assert deleted.status is AssetStatus.DELETED
    assert data.assets[asset.id].status is AssetStatus.DELETED
    assert asset.object_key not in blobs.blobs
    assert data.events[-1].type is EventType.ASSET_DELETED


async def test_deleted_asset_cannot_be_completed_or_deleted_again() -> None:
    data, blobs, who = FakeData(), FakeBlobStore(), principal()
    asset = await request(data, blobs, who)
    await assets.delete_asset(FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock())

    with pytest.raises(NotFound):
        await assets.complete_upload(FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock())
    with pytest.raises(NotFound):
        await assets.delete_asset(FakeUnitOfWork(data), blobs, who, asset.id, clock=FakeClock())


async def test_sweep_deletes_expired_pending_uploads_and_their_bytes_only() -> None:
    data, blobs, who, clock = FakeData(), FakeBlobStore(), principal(), FakeClock()
    stale = await request(data, blobs, who, clock=clock)
    blobs.blobs[stale.object_key] = b"ab"  # a partial upload
    done = await request(data, blobs, who, clock=clock)
    blobs.blobs[done.object_key] = b"abc"
    await assets.complete_upload(FakeUnitOfWork(data), blobs, who, done.id, clock=clock)
    clock.advance(seconds=600)
    fresh = await request(data, blobs, who, clock=clock)
    clock.advance(seconds=301)  # stale expired 1 s ago; fresh has 599 s left

    swept = await assets.sweep_stale_uploads(FakeUnitOfWork(data), blobs, clock=clock)

    assert swept == 1
    assert data.assets[stale.id].status is AssetStatus.DELETED
    assert data.assets[fresh.id].status is AssetStatus.PENDING_UPLOAD
    assert data.assets[done.id].status is AssetStatus.AVAILABLE
    assert blobs.deleted == [stale.object_key]
    assert done.object_key in blobs.blobs


async def test_sweep_removes_bytes_put_after_delete_once_the_url_expired() -> None:
    data, blobs, who, clock = FakeData(), FakeBlobStore(), principal(), FakeClock()
    asset = await request(data, blobs, who, clock=clock)
    await assets.delete_asset(FakeUnitOfWork(data), blobs, who, asset.id, clock=clock)
    blobs.blobs[asset.object_key] = b"abc"  # a PUT that raced the delete, or S3's after it

    early = await assets.sweep_stale_uploads(FakeUnitOfWork(data), blobs, clock=clock)
    clock.advance(seconds=901)
    swept = await assets.sweep_stale_uploads(FakeUnitOfWork(data), blobs, clock=clock)
    again = await assets.sweep_stale_uploads(FakeUnitOfWork(data), blobs, clock=clock)

    assert (early, swept, again) == (0, 1, 0)
    assert asset.object_key not in blobs.blobs
    assert data.assets[asset.id].upload_expires_at is None


async def test_only_a_pending_upload_accepts_bytes() -> None:
    data, blobs, who, clock = FakeData(), FakeBlobStore(), principal(), FakeClock()
    pending = await request(data, blobs, who, clock=clock)
    done = await request(data, blobs, who, clock=clock)
    blobs.blobs[done.object_key] = b"abc"
    await assets.complete_upload(FakeUnitOfWork(data), blobs, who, done.id, clock=clock)
    gone = await request(data, blobs, who, clock=clock)
    await assets.delete_asset(FakeUnitOfWork(data), blobs, who, gone.id, clock=clock)

    accepted = [
        await assets.accepts_upload(FakeUnitOfWork(data), key)
        for key in (pending.object_key, done.object_key, gone.object_key, "assets/none")
    ]

    assert accepted == [True, False, False, False]


async def test_admins_may_not_complete_or_delete_anothers_asset() -> None:
    data, blobs, owner, clock = FakeData(), FakeBlobStore(), principal(), FakeClock()
    pending = await request(data, blobs, owner, clock=clock)
    blobs.blobs[pending.object_key] = b"abc"
    admin = principal(is_admin=True)

    with pytest.raises(Forbidden):
        await assets.complete_upload(FakeUnitOfWork(data), blobs, admin, pending.id, clock=clock)
    with pytest.raises(Forbidden):
        await assets.delete_asset(FakeUnitOfWork(data), blobs, admin, pending.id, clock=clock)

    assert data.assets[pending.id].status is AssetStatus.PENDING_UPLOAD
    assert blobs.deleted == []


async def test_sweep_respects_the_limit() -> None:
    data, blobs, who, clock = FakeData(), FakeBlobStore(), principal(), FakeClock()
    for _ in range(3):
        await request(data, blobs, who, clock=clock)
    clock.advance(seconds=901)

    first = await assets.sweep_stale_uploads(FakeUnitOfWork(data), blobs, clock=clock, limit=2)
    second = await assets.sweep_stale_uploads(FakeUnitOfWork(data), blobs, clock=clock, limit=2)

    assert (first, second) == (2, 1)
