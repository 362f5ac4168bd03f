"""Use cases for whole accounts: erasure, reactivation, and removing stored bytes later."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from domain.errors import InvalidInput, NotFound
from domain.events import EventType, principal_revoked
from domain.ports import BlobStore, Clock, UnitOfWork
from domain.principal import Principal
from domain.services.assets import asset_event
from domain.services.users import require_admin
from domain.users import User

# Bytes the store would not delete are tried again after this long, forever: an erased
# account's files must go, and the store's outages end.
BLOB_RETRY_DELAY = timedelta(seconds=30)


async def delete_viewer(
    uow: UnitOfWork, principal: Principal, confirm_email: str, *, clock: Clock
) -> UUID:
    """Erase the viewer's account in one transaction; the bytes follow through the queue.
    A later sign-in with the same identity starts a new, empty account."""
    principal.require_person("erase the account")
    async with uow:
        [user] = await uow.users.get_many([principal.user_id])
        if user is None:
            raise NotFound("User", principal.user_id)
        if confirm_email.strip().casefold() != user.email.casefold() or not user.email:
            raise InvalidInput({"input.confirmEmail": "must equal the viewer's email"})
        await uow.accounts.erase(user.id, clock())
        # Every process closes the user's sockets when it sees this event.
        await uow.events.append([principal_revoked(user.id, "account erased")])
        await uow.commit()
    return user.id


async def reactivate_user(
    uow: UnitOfWork, principal: Principal, user_id: UUID, *, clock: Clock
) -> User:
    require_admin(principal)
    async with uow:
        user = await uow.accounts.reactivate(user_id, clock())
        if user is None:
            raise NotFound("User", user_id)
        await uow.commit()
    return user


async def delete_queued_blobs(
    uow: UnitOfWork, blobs: BlobStore, *, clock: Clock, limit: int = 200
) -> int:
    """Remove due queued bytes from the store; a failure is retried later, never dropped."""
    async with uow:
        due = await uow.blob_deletions.due(clock(), limit)
        deleted: list[str] = []
        for object_key in due:
            try:
                await blobs.delete(object_key)
            except Exception as error:
                await uow.blob_deletions.postpone(
                    object_key, clock() + BLOB_RETRY_DELAY, f"{type(error).__name__}: {error}"
                )
                continue
            deleted.append(object_key)
        await uow.blob_deletions.forget(deleted, clock())
        await uow.commit()
    return len(deleted)


async def retire_old_assets(
    uow: UnitOfWork, retention_days: int, *, clock: Clock, limit: int = 500
) -> int:
    """Assets older than the retention become DELETED; their bytes are queued for removal.
    A retention of 0 keeps them forever."""
    if retention_days <= 0:
        return 0
    now = clock()
    async with uow:
        retired = await uow.blob_deletions.retire_assets(
            now - timedelta(days=retention_days), now, limit
        )
        await uow.events.append([asset_event(EventType.ASSET_DELETED, a) for a in retired])
        await uow.commit()
    return len(retired)
