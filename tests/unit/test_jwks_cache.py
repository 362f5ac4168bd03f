"""Unit tests for JwksCache with a counting in-memory fetch function (no network)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from auth.jwks import JwksCache, JwksDocument, KeyNotFound

# Long enough that a burst of in-memory gets always finishes inside it, short enough to wait out.
COOLDOWN = 0.2


def rsa_jwk(kid: str | None) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if kid is not None:
        jwk.update(kid=kid, alg="RS256", use="sig")
    return jwk


JWK_A = rsa_jwk("key-a")
JWK_B = rsa_jwk("key-b")
JWK_C = rsa_jwk("key-c")


def jwks(*keys: dict[str, Any]) -> JwksDocument:
    return {"keys": list(keys)}


class FakeFetch:
    """Counts calls; returns `document`, or raises `error` when set; optionally slow."""

    def __init__(self, document: JwksDocument, *, delay: float = 0.0) -> None:
        self.document = document
        self.delay = delay
        self.error: Exception | None = None
        self.calls = 0

    async def __call__(self) -> JwksDocument:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.document


class FetchLog:
    def __init__(self) -> None:
        self.results: list[bool] = []

    def __call__(self, ok: bool) -> None:
        self.results.append(ok)


def unknown_kids(count: int) -> list[str]:
    return [f"unknown-{uuid.uuid4()}" for _ in range(count)]


async def get_all(cache: JwksCache, kids: list[str]) -> list[jwt.PyJWK | BaseException]:
    return await asyncio.gather(*(cache.get(kid) for kid in kids), return_exceptions=True)


async def test_keys_are_cached_so_two_gets_cause_one_fetch() -> None:
    fetch = FakeFetch(jwks(JWK_A, JWK_B))
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    first = await cache.get("key-a")
    second = await cache.get("key-b")
    again = await cache.get("key-a")
    assert fetch.calls == 1
    assert first is again
    assert first.key_id == "key-a"
    assert second.key_id == "key-b"
    assert first.algorithm_name == "RS256"


async def test_unknown_kid_forces_one_refresh_then_a_flood_within_cooldown_fetches_nothing() -> (
    None
):
    fetch = FakeFetch(jwks(JWK_A))
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    await cache.get("key-a")
    assert fetch.calls == 1

    await asyncio.sleep(COOLDOWN * 1.25)
    with pytest.raises(KeyNotFound, match="unknown-"):
        await cache.get(unknown_kids(1)[0])
    assert fetch.calls == 2

    results = await get_all(cache, unknown_kids(100))
    assert all(isinstance(result, KeyNotFound) for result in results)
    assert fetch.calls == 2
    assert (await cache.get("key-a")).key_id == "key-a"
    assert fetch.calls == 2


async def test_after_the_cooldown_one_more_refresh_is_allowed_and_shared_by_a_flood() -> None:
    fetch = FakeFetch(jwks(JWK_A), delay=0.01)
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    await cache.get("key-a")
    results = await get_all(cache, unknown_kids(100))
    assert all(isinstance(result, KeyNotFound) for result in results)
    assert fetch.calls == 1

    await asyncio.sleep(COOLDOWN * 1.25)
    results = await get_all(cache, unknown_kids(100))
    assert all(isinstance(result, KeyNotFound) for result in results)
    assert fetch.calls == 2


async def test_very_first_get_of_an_unknown_kid_fetches_once() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    with pytest.raises(KeyNotFound):
        await cache.get("missing")
    assert fetch.calls == 1


async def test_concurrent_first_gets_share_one_fetch() -> None:
    fetch = FakeFetch(jwks(JWK_A, JWK_B), delay=0.02)
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    results = await get_all(cache, ["key-a", "key-b"] * 25)
    assert fetch.calls == 1
    assert [key.key_id for key in results if isinstance(key, jwt.PyJWK)] == ["key-a", "key-b"] * 25


async def test_last_good_keys_keep_working_when_a_forced_refresh_fails() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    log = FetchLog()
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN, on_fetch=log)
    await cache.get("key-a")

    fetch.error = ConnectionError("jwks endpoint down")
    await asyncio.sleep(COOLDOWN * 1.25)
    with pytest.raises(KeyNotFound):
        await cache.get("key-b")
    assert fetch.calls == 2
    assert (await cache.get("key-a")).key_id == "key-a"
    assert log.results == [True, False]


async def test_last_good_keys_keep_working_when_a_refresh_of_stale_keys_fails() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    log = FetchLog()
    cache = JwksCache(fetch, refresh_cooldown_seconds=60, max_age_seconds=0.05, on_fetch=log)
    await cache.get("key-a")

    fetch.error = ConnectionError("jwks endpoint down")
    await asyncio.sleep(0.08)
    assert (await cache.get("key-a")).key_id == "key-a"
    assert fetch.calls == 2
    assert log.results == [True, False]


async def test_malformed_key_set_counts_as_a_failed_refresh_and_keeps_the_last_good_keys() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    log = FetchLog()
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN, on_fetch=log)
    await cache.get("key-a")

    fetch.document = jwks({"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}, JWK_B)
    await asyncio.sleep(COOLDOWN * 1.25)
    with pytest.raises(KeyNotFound):
        await cache.get("key-b")
    assert (await cache.get("key-a")).key_id == "key-a"
    assert log.results == [True, False]


async def test_when_the_very_first_fetch_fails_get_raises_the_fetch_error() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    fetch.error = ConnectionError("jwks endpoint down")
    log = FetchLog()
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN, on_fetch=log)
    with pytest.raises(ConnectionError, match="jwks endpoint down"):
        await cache.get("key-a")
    assert log.results == [False]


async def test_when_the_very_first_fetch_fails_every_concurrent_waiter_sees_the_error() -> None:
    fetch = FakeFetch(jwks(JWK_A), delay=0.02)
    fetch.error = ConnectionError("jwks endpoint down")
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    results = await get_all(cache, ["key-a"] * 20)
    assert fetch.calls == 1
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_cache_recovers_after_a_failed_first_fetch_once_the_cooldown_passes() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    fetch.error = ConnectionError("jwks endpoint down")
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    with pytest.raises(ConnectionError):
        await cache.get("key-a")

    fetch.error = None
    await asyncio.sleep(COOLDOWN * 1.25)
    assert (await cache.get("key-a")).key_id == "key-a"
    assert fetch.calls == 2


async def test_key_rotation_new_kid_triggers_a_refresh_and_is_found() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    log = FetchLog()
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN, on_fetch=log)
    await cache.get("key-a")

    fetch.document = jwks(JWK_B, JWK_C)
    await asyncio.sleep(COOLDOWN * 1.25)
    assert (await cache.get("key-b")).key_id == "key-b"
    assert fetch.calls == 2
    assert (await cache.get("key-c")).key_id == "key-c"
    assert fetch.calls == 2
    # The retired key is gone with the old set (and within the cooldown no refetch happens).
    with pytest.raises(KeyNotFound):
        await cache.get("key-a")
    assert fetch.calls == 2
    assert log.results == [True, True]


async def test_stale_keys_are_refetched_after_max_age_without_an_unknown_kid() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    cache = JwksCache(fetch, refresh_cooldown_seconds=60, max_age_seconds=0.05)
    await cache.get("key-a")
    await asyncio.sleep(0.08)
    await cache.get("key-a")
    assert fetch.calls == 2


async def test_non_rsa_keys_and_keys_without_kid_are_ignored() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk: dict[str, Any] = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    ec_jwk["kid"] = "ec-key"
    fetch = FakeFetch(jwks(ec_jwk, rsa_jwk(None), JWK_A))
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    assert (await cache.get("key-a")).key_id == "key-a"
    with pytest.raises(KeyNotFound):
        await cache.get("ec-key")


async def test_on_fetch_is_called_with_true_on_success_and_false_on_failure() -> None:
    fetch = FakeFetch(jwks(JWK_A))
    log = FetchLog()
    cache = JwksCache(fetch, refresh_cooldown_seconds=0.0, on_fetch=log)
    await cache.get("key-a")
    fetch.error = RuntimeError("boom")
    with pytest.raises(KeyNotFound):
        await cache.get("key-b")
    fetch.error = None
    fetch.document = jwks(JWK_A, JWK_B)
    assert (await cache.get("key-b")).key_id == "key-b"
    assert log.results == [True, False, True]
    assert fetch.calls == 3


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    fetch = FakeFetch(jwks(JWK_A), delay=0.05)
    cache = JwksCache(fetch, refresh_cooldown_seconds=COOLDOWN)
    cancelled = asyncio.create_task(cache.get("key-a"))
    patient = asyncio.create_task(cache.get("key-a"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    assert (await patient).key_id == "key-a"
    assert cancelled.cancelled()
    assert fetch.calls == 1


async def test_a_refresh_after_a_cancelled_waiter_fetches_again() -> None:
    # Regression: the finished task of a waiter cancelled mid-fetch stayed in flight and the
    # next refresh awaited it instead of fetching, so a newly published kid was refused once.
    fetch = FakeFetch(jwks(JWK_A), delay=0.05)
    cache = JwksCache(fetch, refresh_cooldown_seconds=0.0)
    await cache.get("key-a")
    waiter = asyncio.create_task(cache.get("key-b"))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.sleep(0.08)  # the shielded fetch runs to completion on its own
    assert fetch.calls == 2

    fetch.document = jwks(JWK_A, JWK_B)
    assert (await cache.get("key-b")).key_id == "key-b"
    assert fetch.calls == 3
