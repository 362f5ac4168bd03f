"""API key use cases against fakes: secrets, digests, expiry, lastUsedAt, what keys may not do."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from auth.api_keys import PREFIX, Sha256ApiKeySecrets
from domain.api_keys import ApiKey
from domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from domain.events import EventType
from domain.principal import Principal
from domain.services import accounts, api_keys
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork
from tests.unit.test_user_services import identity, sign_in

SECRETS = Sha256ApiKeySecrets()


async def _person(data: FakeData) -> Principal:
    return await sign_in(data, identity("ann@example.com", "admin", subject="sub-ann"))


async def _key(
    data: FakeData, clock: FakeClock, days: int | None = None
) -> tuple[Principal, ApiKey, str]:
    person = await _person(data)
    key, secret = await api_keys.create_api_key(
        FakeUnitOfWork(data), SECRETS, person, name="ci", expires_in_days=days, clock=clock
    )
    return person, key, secret


def test_a_secret_is_the_prefix_and_32_random_bytes_and_is_stored_as_sha256() -> None:
    secret = SECRETS.new_secret()
    assert secret.startswith(PREFIX)
    assert SECRETS.is_well_formed(secret)
    assert len(secret) == len(PREFIX) + 43  # 32 bytes, base64url without padding
    assert secret != SECRETS.new_secret()
    assert SECRETS.digest(secret) == hashlib.sha256(secret.encode()).digest()
    assert not SECRETS.is_api_key("eyJhbGciOiJSUzI1NiJ9.e30.sig")


async def test_only_the_digest_is_kept_and_the_key_acts_as_its_user_never_as_admin() -> None:
    data, clock = FakeData(), FakeClock()
    person, key, secret = await _key(data, clock)
    assert person.is_admin
    [(stored, digest)] = data.api_keys.values()
    assert digest == SECRETS.digest(secret)
    assert secret not in repr(stored)
    assert key.prefix == secret[: len(PREFIX) + 6]
    principal, _ = await api_keys.authenticate_key(
        FakeUnitOfWork(data), SECRETS, secret, clock=clock
    )
    assert (principal.user_id, principal.is_admin, principal.api_key_id) == (
        person.user_id,
        False,
        key.id,
    )


async def test_last_used_at_is_written_at_most_once_a_minute() -> None:
    data, clock = FakeData(), FakeClock()
    _, key, secret = await _key(data, clock)
    first = clock()
    await api_keys.authenticate_key(FakeUnitOfWork(data), SECRETS, secret, clock=clock)
    clock.advance(seconds=59)
    uow = FakeUnitOfWork(data)
    await api_keys.authenticate_key(uow, SECRETS, secret, clock=clock)
    assert data.api_keys[key.id][0].last_used_at == first
    assert uow.commits == 0  # nothing written within the minute
    clock.advance(seconds=1)
    await api_keys.authenticate_key(FakeUnitOfWork(data), SECRETS, secret, clock=clock)
    assert data.api_keys[key.id][0].last_used_at == clock()


async def test_an_expired_or_revoked_or_unknown_key_is_unauthenticated() -> None:
    data, clock = FakeData(), FakeClock()
    person, _, secret = await _key(data, clock, days=1)
    clock.advance(days=1)
    with pytest.raises(Unauthenticated):
        await api_keys.authenticate_key(FakeUnitOfWork(data), SECRETS, secret, clock=clock)
    with pytest.raises(Unauthenticated):
        await api_keys.authenticate_key(
            FakeUnitOfWork(data), SECRETS, SECRETS.new_secret(), clock=clock
        )
    _, other, other_secret = await _key(data, clock)
    revoked = await api_keys.revoke_api_key(FakeUnitOfWork(data), person, other.id, clock=clock)
    assert revoked.revoked_at == clock()
    with pytest.raises(Unauthenticated):
        await api_keys.authenticate_key(FakeUnitOfWork(data), SECRETS, other_secret, clock=clock)


async def test_revoking_a_key_records_an_event_naming_the_key() -> None:
    data, clock = FakeData(), FakeClock()
    person, key, _ = await _key(data, clock)
    await api_keys.revoke_api_key(FakeUnitOfWork(data), person, key.id, clock=clock)
    [event] = [e for e in data.events if e.type is EventType.PRINCIPAL_REVOKED]
    assert (event.subject_id, event.owner_id) == (key.id, person.user_id)


async def test_a_key_cannot_make_keys_or_erase_the_account() -> None:
    data, clock = FakeData(), FakeClock()
    _, _, secret = await _key(data, clock)
    with_key, _ = await api_keys.authenticate_key(
        FakeUnitOfWork(data), SECRETS, secret, clock=clock
    )
    with pytest.raises(Forbidden):
        await api_keys.create_api_key(
            FakeUnitOfWork(data), SECRETS, with_key, name="x", expires_in_days=None, clock=clock
        )
    with pytest.raises(Forbidden):
        await accounts.delete_viewer(FakeUnitOfWork(data), with_key, "ann@example.com", clock=clock)


@pytest.mark.parametrize(("name", "days"), [("", None), ("ok", 0), ("ok", 366), ("x" * 101, 1)])
async def test_bad_key_requests_are_invalid_input(name: str, days: int | None) -> None:
    data, clock = FakeData(), FakeClock()
    person = await _person(data)
    with pytest.raises(InvalidInput):
        await api_keys.create_api_key(
            FakeUnitOfWork(data), SECRETS, person, name=name, expires_in_days=days, clock=clock
        )
    assert data.api_keys == {}


async def test_another_users_key_is_not_found() -> None:
    data, clock = FakeData(), FakeClock()
    _, key, _ = await _key(data, clock)
    bob = await sign_in(data, identity("bob@example.com", subject="sub-bob"))
    with pytest.raises(NotFound):
        await api_keys.revoke_api_key(FakeUnitOfWork(data), bob, key.id, clock=clock)


async def test_keys_expire_in_the_days_asked() -> None:
    data, clock = FakeData(), FakeClock()
    _, key, _ = await _key(data, clock, days=30)
    assert key.expires_at == clock() + timedelta(days=30)
