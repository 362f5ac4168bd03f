"""Use cases for API keys: make, list, revoke, and sign a request in with one."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from domain.api_keys import ApiKey, ApiKeySecrets, checked_request, key_revoked
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.ids import new_id
from domain.ports import Clock, UnitOfWork
from domain.principal import Principal, require_owner


async def create_api_key(
    uow: UnitOfWork,
    secrets: ApiKeySecrets,
    principal: Principal,
    *,
    name: str,
    expires_in_days: int | None,
    clock: Clock,
) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown this once and stored only as a digest."""
    principal.require_person("make API keys")
    name, days = checked_request(name, expires_in_days)
    secret = secrets.new_secret()
    now = clock()
    key = ApiKey(
        id=new_id(),
        owner_id=principal.user_id,
        name=name,
        prefix=secrets.display_prefix(secret),
        created_at=now,
        expires_at=None if days is None else now + timedelta(days=days),
    )
    async with uow:
        await uow.api_keys.add(key, secrets.digest(secret))
        await uow.commit()
    return key, secret


async def list_api_keys(uow: UnitOfWork, principal: Principal) -> list[ApiKey]:
    async with uow:
        return await uow.api_keys.list_for_owner(principal.user_id)


async def get_api_key(uow: UnitOfWork, principal: Principal, key_id: UUID) -> ApiKey | None:
    """A key is its owner's alone, also for administrators (like webhook endpoints)."""
    async with uow:
        key = await uow.api_keys.get(key_id)
    return key if key is not None and key.owner_id == principal.user_id else None


async def revoke_api_key(
    uow: UnitOfWork, principal: Principal, key_id: UUID, *, clock: Clock
) -> ApiKey:
    """Revoked at once on every process: requests look the key up each time, and the event
    closes the sockets opened with it wherever they are."""
    async with uow:
        key = await uow.api_keys.get(key_id)
        if key is None or not principal.can_read_owned_by(key.owner_id):
            raise NotFound("ApiKey", key_id)
        require_owner(principal, key, "API key")
        if key.revoked_at is not None:
            return key
        revoked = key.revoked(clock())
        await uow.api_keys.save_revoked(revoked)
        await uow.events.append([key_revoked(revoked)])
        await uow.commit()
    return revoked


async def authenticate_key(
    uow: UnitOfWork,
    secrets: ApiKeySecrets,
    secret: str,
    *,
    clock: Clock,
    reader: UnitOfWork | None = None,
) -> tuple[Principal, ApiKey]:
    """The principal a key acts as: its user, never an administrator.

    Looked up on every request (no cache), so a revoked key is refused at once everywhere.
    With a `reader` (read-only), a key used within the last minute costs no transaction."""
    now = clock()
    async with reader or uow:
        found = reader or uow
        key = await found.api_keys.by_hash(secrets.digest(secret))
        if key is None or not key.is_usable(now):
            raise Unauthenticated("unknown, revoked or expired API key")
        [user] = await found.users.get_many([key.owner_id])
    if user is None:
        raise Unauthenticated("unknown, revoked or expired API key")
    if not user.is_active:
        raise Forbidden("this account is deactivated")
    if key.is_due_for_touch(now):
        async with uow:
            await uow.api_keys.touch(key.id, now)
            await uow.commit()
    principal = Principal(
        user_id=user.id, subject=user.subject, groups=(), is_admin=False, api_key_id=key.id
    )
    return principal, key
