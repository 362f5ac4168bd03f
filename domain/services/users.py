"""Use cases for users: sign-in provisioning, lookups, listing, profile changes."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from domain.errors import Conflict, Forbidden, NotFound
from domain.events import principal_revoked
from domain.pagination import Page, PageRequest
from domain.ports import Clock, UnitOfWork
from domain.principal import Identity, Principal
from domain.users import User, UserFilter


async def authenticate(
    uow: UnitOfWork,
    identity: Identity,
    *,
    admin_group: str,
    clock: Clock,
    reader: UnitOfWork | None = None,
) -> tuple[Principal, User]:
    """Provision or refresh the user behind a verified identity; refuse deactivated users.

    With a `reader` (a read-only unit of work), a returning user whose claims are unchanged
    costs one read and no transaction; anyone else gets the upsert, as without one.
    """
    user = None
    if reader is not None:
        async with reader:
            user = await reader.users.get_by_subject(identity.subject)
    if user is None or (user.email, user.groups) != (identity.email, identity.groups):
        async with uow:
            user = await uow.users.upsert_from_identity(identity, clock())
            await uow.commit()
    if not user.is_active:
        raise Forbidden("this account is deactivated")
    principal = Principal(
        user_id=user.id,
        subject=user.subject,
        groups=identity.groups,
        is_admin=admin_group in identity.groups,
    )
    return principal, user


async def get_visible_users(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[User | None]:
    """Users by id, None where the caller may not see them (self, or any for admins)."""
    visible = [i for i in ids if principal.can_read_owned_by(i)]
    async with uow:
        found = await uow.users.get_many(visible) if visible else []
    by_id = {user.id: user for user in found if user is not None}
    return [by_id.get(i) for i in ids]


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only administrators may do this")


async def list_users(
    uow: UnitOfWork, principal: Principal, request: PageRequest, user_filter: UserFilter
) -> Page[User]:
    require_admin(principal)
    async with uow:
        return await uow.users.list_page(request, user_filter)


async def count_users(uow: UnitOfWork, principal: Principal, user_filter: UserFilter) -> int:
    require_admin(principal)
    async with uow:
        return await uow.users.count(user_filter)


async def update_viewer(
    uow: UnitOfWork,
    principal: Principal,
    *,
    name: str | None,
    language: str | None,
    clock: Clock,
) -> User:
    async with uow:
        [user] = await uow.users.get_many([principal.user_id])
        if user is None:
            raise NotFound("User", principal.user_id)
        saved = await uow.users.save(user.with_profile(name=name, language=language, now=clock()))
        await uow.commit()
    return saved


async def deactivate_user(
    uow: UnitOfWork, principal: Principal, user_id: UUID, *, clock: Clock
) -> User:
    require_admin(principal)
    if user_id == principal.user_id:
        raise Conflict("you cannot deactivate your own account")
    async with uow:
        [user] = await uow.users.get_many([user_id])
        if user is None:
            raise NotFound("User", user_id)
        if not user.is_active:
            return user
        saved = await uow.users.save(user.deactivated(clock()))
        await uow.events.append([principal_revoked(user_id, "deactivated")])
        await uow.commit()
    return saved
