"""The sign-in cache: lifetimes, revocation by id, and trust only while the bus is heard."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.principal import Principal
from graph.protection.sign_in import SignedIn, SignInCache, revoking

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def signed_in(expires_in: float | None = 3600) -> SignedIn:
    principal = Principal(user_id=uuid.uuid4(), subject="s", groups=(), is_admin=False)
    expires = None if expires_in is None else T0 + timedelta(seconds=expires_in)
    return SignedIn(principal, expires)


def listening(ttl: float = 30, **kwargs: int) -> tuple[SignInCache, Clock]:
    clock = Clock()
    cache = SignInCache(ttl, clock, **kwargs)
    cache.listener_state("caught_up")
    return cache, clock


def test_a_sign_in_is_kept_for_the_ttl_and_never_past_the_tokens_expiry() -> None:
    cache, clock = listening(ttl=30)
    long, short = signed_in(3600), signed_in(10)
    cache.put("long", long, generation=cache.generation)
    cache.put("short", short, generation=cache.generation)
    assert cache.get("long") == long
    assert cache.get("short") == short
    assert cache.get("other") is None
    clock.now = T0 + timedelta(seconds=10)
    assert cache.get("short") is None
    assert cache.get("long") == long
    clock.now = T0 + timedelta(seconds=30)
    assert cache.get("long") is None
    assert len(cache) == 0


def test_revoking_a_user_drops_every_credential_of_theirs_and_an_extra_id_drops_its_own() -> None:
    cache, _ = listening()
    mine = signed_in()
    key_id = uuid.uuid4()  # an API key, revocable on its own
    cache.put("token", mine, generation=cache.generation)
    cache.put("api-key", mine, generation=cache.generation, revoked_by=[key_id])
    other = signed_in()
    cache.put("theirs", other, generation=cache.generation)

    assert cache.revoke([key_id]) == 1
    assert cache.get("api-key") is None
    assert cache.get("token") == mine
    assert cache.revoke([mine.principal.user_id]) == 1
    assert cache.get("token") is None
    assert cache.get("theirs") == other


def test_a_sign_in_that_began_before_a_revocation_is_not_stored() -> None:
    cache, _ = listening()
    began = cache.generation  # the user is read from the database after this
    cache.revoke([uuid.uuid4()])  # whoever it was: the read may predate it
    cache.put("token", signed_in(), generation=began)
    assert cache.get("token") is None


def test_nothing_is_served_unless_the_listener_is_caught_up() -> None:
    clock = Clock()
    cache = SignInCache(30, clock)
    cache.put("token", signed_in(), generation=cache.generation)
    assert cache.get("token") is None  # never heard from the listener: nothing stored

    cache.listener_state("caught_up")
    cache.put("token", signed_in(), generation=cache.generation)
    assert cache.get("token") is not None
    cache.listener_state("pending")  # a notification is in: maybe a revocation
    assert cache.get("token") is None
    cache.listener_state("caught_up")
    assert cache.get("token") is not None
    cache.listener_state("disconnected")  # revocations may be missed: forget everything
    cache.listener_state("caught_up")
    assert cache.get("token") is None


def test_the_cache_is_bounded_oldest_first() -> None:
    cache, _ = listening(max_entries=2)
    for name in ("a", "b", "c"):
        cache.put(name, signed_in(), generation=cache.generation)
    assert [cache.get(n) is not None for n in ("a", "b", "c")] == [False, True, True]


def test_a_zero_ttl_keeps_nothing() -> None:
    cache, _ = listening(ttl=0)
    cache.put("token", signed_in(), generation=cache.generation)
    assert cache.get("token") is None


async def test_revoking_drops_at_once_and_waits_until_the_bus_delivered_it() -> None:
    cache, _ = listening()
    victim = signed_in()
    cache.put("token", victim, generation=cache.generation)
    user_id = victim.principal.user_id

    async def deliver_later() -> None:
        await asyncio.sleep(0.01)
        cache.revoke([user_id], from_bus=True)

    delivered = asyncio.get_running_loop().create_task(deliver_later())
    async with revoking(cache, [user_id], wait_seconds=30):
        pass  # the use case commits here
    assert cache.get("token") is None
    assert delivered.done()  # revoking returned only after the bus delivered it


async def test_revoking_gives_up_waiting_after_the_timeout_and_not_when_the_use_case_fails() -> (
    None
):
    cache, _ = listening()
    user_id = uuid.uuid4()
    async with revoking(cache, [user_id], wait_seconds=0.01):
        pass  # nothing delivers: it returns after the timeout
    with pytest.raises(RuntimeError):
        async with revoking(cache, [user_id], wait_seconds=30):
            raise RuntimeError("the use case failed")
    async with revoking(None, [user_id]):
        pass
