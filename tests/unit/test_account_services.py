"""Account use cases against fakes: a key's sockets, queued byte deletion, retention."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from domain.assets import Asset, AssetStatus
from domain.events import EventType
from domain.principal import Principal
from domain.services import accounts
from domain.services.assets import UploadPolicy
from graph.execution.context import Context
from graph.execution.query_protection import rate_limit_key
from graph.protection.rate_limit import RateLimiter, RateLimitPolicy
from graph.realtime.sockets import SocketRegistry
from tests.unit.fakes import FakeBlobStore, FakeClock, FakeData, FakeUnitOfWork


def _asset(data: FakeData, clock: FakeClock, age_days: float) -> Asset:
    asset_id = uuid.uuid4()
    created = clock() - timedelta(days=age_days)
    asset = Asset(
        id=asset_id,
        owner_id=uuid.uuid4(),
        file_name="a.png",
        content_type="image/png",
        size_bytes=3,
        status=AssetStatus.AVAILABLE,
        object_key=f"assets/{asset_id}/a.png",
        upload_expires_at=None,
        created_at=created,
        updated_at=created,
    )
    data.assets[asset_id] = asset
    return asset


async def test_revoking_a_key_closes_only_the_sockets_opened_with_it() -> None:
    sockets = SocketRegistry()
    closed: list[str] = []
    user, key = uuid.uuid4(), uuid.uuid4()

    def closer(name: str) -> Callable[[int, str], Awaitable[None]]:
        async def close(code: int, reason: str) -> None:
            closed.append(f"{name}:{code}")

        return close

    slots = []
    for name, holders in (("token", (user,)), ("key", (user, key))):
        slot = await sockets.admit("127.0.0.1", closer(name))
        assert slot is not None
        sockets.signed_in(slot, holders, closer(name))
        slots.append(slot)
    assert await sockets.revoke([key]) == 1
    assert closed == ["key:4403"]
    sockets.release(slots[1], (user, key), None)
    assert await sockets.revoke([user]) == 2  # the user's sockets: both, as before
    assert sockets.open == 1


async def test_assets_older_than_the_retention_become_deleted_and_their_bytes_go() -> None:
    data, clock, blobs = FakeData(), FakeClock(), FakeBlobStore()
    old, young = _asset(data, clock, 31), _asset(data, clock, 29)
    blobs.blobs = {old.object_key: b"old", young.object_key: b"new"}

    assert await accounts.retire_old_assets(FakeUnitOfWork(data), 30, clock=clock) == 1
    assert data.assets[old.id].status is AssetStatus.DELETED
    assert data.assets[young.id].status is AssetStatus.AVAILABLE
    [event] = data.events
    assert (event.type, event.subject_id) == (EventType.ASSET_DELETED, old.id)
    assert await accounts.delete_queued_blobs(FakeUnitOfWork(data), blobs, clock=clock) == 1
    assert blobs.blobs == {young.object_key: b"new"}
    assert data.blob_deletions == {}


async def test_a_retention_of_zero_keeps_assets_forever() -> None:
    data, clock = FakeData(), FakeClock()
    ancient = _asset(data, clock, 3650)
    assert await accounts.retire_old_assets(FakeUnitOfWork(data), 0, clock=clock) == 0
    assert data.assets[ancient.id] == replace(ancient)


class FlakyStore(FakeBlobStore):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def delete(self, key: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unreachable")
        await super().delete(key)


async def test_bytes_the_store_would_not_delete_are_retried_until_they_are_gone() -> None:
    data, clock = FakeData(), FakeClock()
    data.blob_deletions["assets/x"] = clock()
    store = FlakyStore(failures=2)
    store.blobs["assets/x"] = b"x"
    for _ in range(2):
        assert await accounts.delete_queued_blobs(FakeUnitOfWork(data), store, clock=clock) == 0
        assert "assets/x" in data.blob_deletions
        # not due again before the retry delay
        assert await accounts.delete_queued_blobs(FakeUnitOfWork(data), store, clock=clock) == 0
        clock.advance(seconds=accounts.BLOB_RETRY_DELAY.total_seconds())
    assert await accounts.delete_queued_blobs(FakeUnitOfWork(data), store, clock=clock) == 1
    assert store.blobs == {}
    assert data.blob_deletions == {}


def test_a_key_spends_its_users_rate_limit() -> None:
    """The limiter's bucket is the user's, whether the request came with a token or a key."""
    user = uuid.uuid4()
    limiter = RateLimiter(RateLimitPolicy())
    person = Principal(user_id=user, subject="s", groups=(), is_admin=False)
    with_key = replace(person, api_key_id=uuid.uuid4())
    keys = {rate_limit_key(_context(principal), limiter) for principal in (person, with_key)}
    assert keys == {f"user:{user}"}


def _context(principal: Principal) -> Context:
    return Context(
        request_id="r",
        uow=FakeUnitOfWork,
        clock=FakeClock(),
        admin_group="admin",
        blobs=FakeBlobStore(),
        download_url_ttl=60,
        upload_policy=UploadPolicy(),
        run_inference_timeout=1.0,
        principal_or_error=principal,
    )
